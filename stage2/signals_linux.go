package stage2

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// An exec resets caught signals to their default action but keeps ignored
// ones ignored. The launcher's caller may ignore signals for itself (a
// stage1 that forwards SIGINT and SIGTERM to the app, a shell's nohup);
// the app must still get them, so every ignored signal is reset to its
// default before the exec, as systemd does for its services.

// kernelSigaction is large enough for struct sigaction on every Linux
// architecture; only its handler is set (0, SIG_DFL) and read.
type kernelSigaction struct {
	handler uintptr
	rest    [3]uint64
}

const (
	sigIgn     = 1  // SIG_IGN
	sigsetSize = 8  // the kernel's sigset_t
	maxSignal  = 64 // _NSIG
)

// resetIgnoredSignals gives every ignored signal its default action.
func resetIgnoredSignals() error {
	for sig := 1; sig <= maxSignal; sig++ {
		if sig == int(unix.SIGKILL) || sig == int(unix.SIGSTOP) {
			continue
		}
		var old kernelSigaction
		_, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), 0, uintptr(unsafe.Pointer(&old)), sigsetSize, 0, 0)
		if errno == unix.EINVAL {
			continue // a signal number this kernel does not have
		}
		if errno != 0 {
			return errno
		}
		if old.handler != sigIgn {
			continue
		}
		var dfl kernelSigaction
		if _, _, errno := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&dfl)), 0, sigsetSize, 0, 0); errno != 0 {
			return errno
		}
	}
	return nil
}
