package pod

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// RunFlags are the arguments stage0 passes to a stage1 run entrypoint
// (stage1 interface version 4; see Documentation/design.md).
type RunFlags struct {
	Debug, Interactive, Mutable bool
	Net, MDSToken, LocalConfig  string
	PrivateUsers, Hostname      string
	DNSConfMode                 string
	Security                    Security
}

// ParseRunFlags reads a run entrypoint's arguments: the flags, then the pod
// UUID.
func ParseRunFlags(name string, args []string, stderr io.Writer) (*RunFlags, string, error) {
	var f RunFlags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.BoolVar(&f.Debug, "debug", false, "")
	fs.BoolVar(&f.Interactive, "interactive", false, "")
	fs.BoolVar(&f.Mutable, "mutable", false, "")
	fs.StringVar(&f.Net, "net", "", "")
	fs.StringVar(&f.MDSToken, "mds-token", "", "")
	fs.StringVar(&f.LocalConfig, "local-config", "", "")
	fs.StringVar(&f.PrivateUsers, "private-users", "", "")
	fs.StringVar(&f.Hostname, "hostname", "", "")
	fs.StringVar(&f.DNSConfMode, "dns-conf-mode", "", "")
	fs.BoolVar(&f.Security.AllCapabilities, "disable-capabilities-restriction", false, "")
	fs.BoolVar(&f.Security.NoPathRestrictions, "disable-paths", false, "")
	fs.BoolVar(&f.Security.NoSeccomp, "disable-seccomp", false, "")
	if err := fs.Parse(args); err != nil {
		return nil, "", err
	}
	if fs.NArg() != 1 {
		return nil, "", fmt.Errorf("want exactly one pod UUID, got %q", fs.Args())
	}
	return &f, fs.Arg(0), nil
}

// TakeLock takes over the pod lock stage0 handed to stage1 (RKT_LOCK_FD):
// it is marked close-on-exec, so that only the processes it is passed to
// on purpose hold it, and returned as a file (nil if there is none).
func TakeLock() *os.File {
	defer os.Unsetenv("RKT_LOCK_FD")
	fd, err := strconv.Atoi(os.Getenv("RKT_LOCK_FD"))
	if err != nil || fd < 0 {
		return nil
	}
	unix.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), "pod-lock")
}
