package store

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// fileLock is an flock(2) lock on a file that may be removed by whoever
// holds it exclusively. Taking it checks, after the lock is granted, that
// the path still names the locked file; if it was unlinked meanwhile the
// lock is taken again on the new file, so a lock on a deleted file never
// counts.
type fileLock struct {
	f    *os.File
	path string
}

// lockFile opens (creating) path and locks it shared or exclusive. With
// nonBlock it fails with errdefs.ErrBusy instead of waiting.
func lockFile(path string, exclusive, nonBlock bool) (*fileLock, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		l := &fileLock{f: f, path: path}
		ok, err := l.lock(exclusive, nonBlock)
		if err != nil {
			f.Close()
			return nil, err
		}
		if ok {
			return l, nil
		}
		f.Close()
	}
}

// lockExisting locks an existing file or directory exclusively without
// waiting; ok is false if someone else holds it or it has gone.
func lockExisting(path string) (l *fileLock, ok bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, false, nil
		}
		return nil, false, err
	}
	l = &fileLock{f: f, path: path}
	same, err := l.lock(true, true)
	if err != nil || !same {
		f.Close()
		if errors.Is(err, errdefs.ErrBusy) {
			err = nil
		}
		return nil, false, err
	}
	return l, true, nil
}

// lock (re)locks l; same is false when l's file is no longer at l.path, in
// which case the caller must start again.
func (l *fileLock) lock(exclusive, nonBlock bool) (same bool, err error) {
	how := unix.LOCK_SH
	if exclusive {
		how = unix.LOCK_EX
	}
	if nonBlock {
		how |= unix.LOCK_NB
	}
	for {
		err = unix.Flock(int(l.f.Fd()), how)
		if err != unix.EINTR {
			break
		}
	}
	if errors.Is(err, unix.EWOULDBLOCK) {
		return false, fmt.Errorf("%s is locked: %w", l.path, errdefs.ErrBusy)
	}
	if err != nil {
		return false, fmt.Errorf("locking %s: %w", l.path, err)
	}
	return l.stillLinked()
}

func (l *fileLock) stillLinked() (bool, error) {
	var held, named unix.Stat_t
	if err := unix.Fstat(int(l.f.Fd()), &held); err != nil {
		return false, fmt.Errorf("locking %s: %w", l.path, err)
	}
	if err := unix.Stat(l.path, &named); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("locking %s: %w", l.path, err)
	}
	return held.Dev == named.Dev && held.Ino == named.Ino, nil
}

// remove unlinks the lock file; only while holding it exclusively.
func (l *fileLock) remove() error {
	err := os.Remove(l.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// unlock drops the lock. It is safe to call more than once.
func (l *fileLock) unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// syncDir makes a rename or unlink in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// syncFS flushes the whole filesystem holding path: after rendering a tree
// of many files this is cheaper than an fsync per file, and it must happen
// before the tree is marked complete.
func syncFS(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		return fmt.Errorf("syncing filesystem of %s: %w", path, err)
	}
	return nil
}
