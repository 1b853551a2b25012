package nspawn

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/stage1/pod"
	"github.com/orbit-containers/orbit/stage2"
)

// execName is the name the run entrypoint re-executes the binary under to
// start systemd-nspawn (see startNspawn).
const execName = "nspawn/exec"

// nspawnRunDir is where systemd-nspawn keeps its per-machine runtime files.
const nspawnRunDir = "/run/systemd/nspawn"

// startNspawn returns the command that runs systemd-nspawn with args,
// handing it the socket-activation sockets, if any. nspawn passes them on
// to the container's PID 1 only when LISTEN_PID names nspawn itself, and on
// a host whose /run is not a tmpfs (one not booted with systemd) nspawn
// cannot clean up its runtime directory after the container and says so on
// every run: in either case nspawn is started through Exec, which sets
// LISTEN_PID for the PID nspawn will have, and gives it, where needed, a
// mount namespace of its own with a private tmpfs on that directory.
func startNspawn(nspawn string, args []string, sockets []*os.File) *exec.Cmd {
	var st unix.Statfs_t
	privateRun := unix.Statfs("/run", &st) != nil || st.Type != unix.TMPFS_MAGIC
	if !privateRun && len(sockets) == 0 {
		return exec.Command(nspawn, args...)
	}
	var helperArgs []string
	if privateRun {
		helperArgs = append(helperArgs, privateRunFlag)
	}
	if len(sockets) > 0 {
		helperArgs = append(helperArgs, listenFdsFlag+strconv.Itoa(len(sockets)))
	}
	cmd := exec.Command("/proc/self/exe", append(append(helperArgs, nspawn), args...)...)
	cmd.Args[0] = execName
	cmd.ExtraFiles = sockets // descriptors 3 and up, as the protocol wants
	if privateRun {
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	}
	return cmd
}

// privateRunFlag asks Exec for the private runtime directory.
const privateRunFlag = "--private-run"

// listenFdsFlag, followed by a count, tells Exec how many sockets it hands
// on (descriptors 3 and up).
const listenFdsFlag = "--listen-fds="

// Exec is the helper startNspawn runs: with privateRunFlag, in its new
// mount namespace, it stops mount events from propagating back to the host
// and mounts a tmpfs on nspawn's runtime directory; with listenFdsFlag, it
// sets the socket-activation variables for itself; then it execs
// systemd-nspawn with the rest of args, keeping its PID and every
// inherited descriptor (the pod lock and the sockets among them).
func Exec(args []string) int { return pod.Main("stage1 nspawn", args, execNspawn) }

func execNspawn(args []string) (int, error) {
	if len(args) > 0 && args[0] == privateRunFlag {
		if err := privateRunDir(); err != nil {
			return 0, err
		}
		args = args[1:]
	}
	sockets := 0
	if len(args) > 0 && strings.HasPrefix(args[0], listenFdsFlag) {
		n, err := strconv.Atoi(strings.TrimPrefix(args[0], listenFdsFlag))
		if err != nil || n < 0 {
			return 0, fmt.Errorf("exec: bad %s", args[0])
		}
		sockets = n
		args = args[1:]
	}
	if len(args) == 0 {
		return 0, errors.New("exec: no program")
	}
	err := unix.Exec(args[0], args, stage2.SocketEnv(os.Environ(), sockets))
	return 0, fmt.Errorf("starting %s: %w", args[0], err)
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
