package supervisor

import (
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// hostIPCJoinedEnv marks the supervisor re-executed in the host's IPC
// namespace.
const hostIPCJoinedEnv = "ORBIT_SUPERVISOR_HOST_IPC"

// joinHostIPC moves the whole supervisor into the IPC namespace open as the
// last socket-activation descriptor (Config.HostIPC). setns(2) moves only
// the calling thread, and a Go program has several, so the thread that
// joined re-executes the supervisor: the new program starts with that
// thread's namespaces, and every app it starts inherits them. The
// descriptor is closed and taken off LISTEN_FDS first, so no app is handed
// it. Run again after the re-execution, it only clears its mark.
func joinHostIPC() error {
	if os.Getenv(hostIPCJoinedEnv) != "" {
		return os.Unsetenv(hostIPCJoinedEnv)
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 1 || os.Getenv("LISTEN_PID") != strconv.Itoa(os.Getpid()) {
		return fmt.Errorf("the host's IPC namespace was not handed over (LISTEN_FDS=%q)", os.Getenv("LISTEN_FDS"))
	}
	fd := 3 + n - 1
	runtime.LockOSThread() // never unlocked: the thread execs or the process fails
	if err := unix.Setns(fd, unix.CLONE_NEWIPC); err != nil {
		return fmt.Errorf("joining the host's IPC namespace: %w", err)
	}
	unix.Close(fd)
	if n == 1 {
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDNAMES")
	} else {
		os.Setenv("LISTEN_FDS", strconv.Itoa(n-1))
	}
	os.Setenv(hostIPCJoinedEnv, "1")
	err = unix.Exec("/proc/self/exe", os.Args, os.Environ())
	return fmt.Errorf("re-executing the supervisor in the host's IPC namespace: %w", err)
}
