package nspawn

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// execName is the name the run entrypoint re-executes the binary under to
// start systemd-nspawn (see startNspawn).
const execName = "nspawn/exec"

// nspawnRunDir is where systemd-nspawn keeps its per-machine runtime files.
const nspawnRunDir = "/run/systemd/nspawn"

// startNspawn returns the command that runs systemd-nspawn with args. On a
// host whose /run is not a tmpfs (one not booted with systemd), nspawn
// cannot clean up its runtime directory after the container and says so
// on every run; there nspawn is started through Exec, in a mount namespace
// of its own with a private tmpfs on that directory, so it can.
func startNspawn(nspawn string, args []string) *exec.Cmd {
	var st unix.Statfs_t
	if err := unix.Statfs("/run", &st); err == nil && st.Type == unix.TMPFS_MAGIC {
		return exec.Command(nspawn, args...)
	}
	cmd := exec.Command("/proc/self/exe", append([]string{nspawn}, args...)...)
	cmd.Args[0] = execName
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	return cmd
}

// Exec is the helper startNspawn runs: in its new mount namespace it stops
// mount events from propagating back to the host, mounts a tmpfs on
// nspawn's runtime directory and execs systemd-nspawn (args[0]) with the
// rest of args, keeping its PID and every inherited descriptor (the pod
// lock among them).
func Exec(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "stage1 nspawn: exec: no program")
		return 254
	}
	if err := privateRunDir(); err != nil {
		fmt.Fprintf(os.Stderr, "stage1 nspawn: %v\n", err)
		return 254
	}
	err := unix.Exec(args[0], args, os.Environ())
	fmt.Fprintf(os.Stderr, "stage1 nspawn: starting %s: %v\n", args[0], err)
	return 254
}

func privateRunDir() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("making / a slave mount: %w", err)
	}
	if err := os.MkdirAll(nspawnRunDir, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", nspawnRunDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0755"); err != nil {
		return fmt.Errorf("mounting a tmpfs on %s: %w", nspawnRunDir, err)
	}
	return nil
}
