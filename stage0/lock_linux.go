package stage0

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// dirLock is an flock(2) on a directory. The lock belongs to the open file
// description, so it survives renames of the directory and an exec of the
// process that holds it, and the kernel drops it when the last descriptor
// closes.
type dirLock struct {
	f *os.File
}

func openDirLock(path string) (*dirLock, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	return &dirLock{f: f}, nil
}

func (l *dirLock) flock(how int) error {
	for {
		err := unix.Flock(int(l.f.Fd()), how)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("%s is locked: %w", l.f.Name(), errdefs.ErrBusy)
		}
		return err
	}
}

func (l *dirLock) tryExclusive() error { return l.flock(unix.LOCK_EX | unix.LOCK_NB) }
func (l *dirLock) tryShared() error    { return l.flock(unix.LOCK_SH | unix.LOCK_NB) }
func (l *dirLock) close() error        { return l.f.Close() }

// fd returns the descriptor with close-on-exec cleared, for handing the lock
// to stage1 through an exec.
func (l *dirLock) inheritableFd() (int, error) {
	fd := int(l.f.Fd())
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
		return -1, fmt.Errorf("clearing close-on-exec on the pod lock: %w", err)
	}
	return fd, nil
}

// lockedByOther reports whether someone holds an exclusive lock on path.
func lockedByOther(path string) (bool, error) {
	l, err := openDirLock(path)
	if err != nil {
		return false, err
	}
	defer l.close()
	if err := l.tryShared(); err != nil {
		if errors.Is(err, errdefs.ErrBusy) {
			return true, nil
		}
		return false, err
	}
	return false, nil
}
