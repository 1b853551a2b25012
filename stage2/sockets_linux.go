package stage2

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// InheritedSockets returns the listening sockets this process was handed
// by socket activation (LISTEN_FDS descriptors from 3, for LISTEN_PID, the
// systemd protocol), marked close-on-exec and with the variables removed,
// so they reach only the apps they are passed to (CommandWithSockets).
func InheritedSockets() []*os.File {
	defer func() {
		os.Unsetenv("LISTEN_FDS")
		os.Unsetenv("LISTEN_PID")
		os.Unsetenv("LISTEN_FDNAMES")
	}()
	pid, err := strconv.Atoi(os.Getenv("LISTEN_PID"))
	if err != nil || pid != os.Getpid() {
		return nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n <= 0 || n > 1<<10 {
		return nil
	}
	files := make([]*os.File, 0, n)
	for fd := 3; fd < 3+n; fd++ {
		unix.CloseOnExec(fd)
		files = append(files, os.NewFile(uintptr(fd), "socket-"+strconv.Itoa(fd)))
	}
	return files
}
