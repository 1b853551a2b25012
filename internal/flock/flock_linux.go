// Package flock is orbit's one wrapper of flock(2), the lock between
// processes that guards pods, image leases, trees and temp files.
//
// A lock belongs to the open file description, not to the process: it
// survives a rename of the locked path and an exec of the holder, is
// shared by every descriptor duplicated from the same open (so it can be
// handed to a child, see InheritableFd), and the kernel drops it when the
// last of those descriptors closes. Two opens of the same path, even in
// one process, contend like two processes.
package flock

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/poll"
)

// Mode is the kind of lock: any number of shared holders, or one
// exclusive holder.
type Mode int

const (
	Shared Mode = iota
	Exclusive
)

func (m Mode) how() int {
	if m == Exclusive {
		return unix.LOCK_EX
	}
	return unix.LOCK_SH
}

// Lock is one open file or directory that can be locked. It holds no lock
// until TryLock or Lock succeeds; Close releases whatever it holds.
type Lock struct {
	f    *os.File
	path string
}

// Open opens an existing file or directory for locking.
func Open(path string) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return &Lock{f: f, path: path}, nil
}

// Create opens path for locking, creating it as an empty file with perm if
// it does not exist.
func Create(path string, perm os.FileMode) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|unix.O_CLOEXEC, perm)
	if err != nil {
		return nil, err
	}
	return &Lock{f: f, path: path}, nil
}

// FromFile locks f, a file opened elsewhere (a temp file, say). The Lock
// takes f over: Close closes it.
func FromFile(f *os.File) *Lock {
	return &Lock{f: f, path: f.Name()}
}

// Path is the path the lock was opened by.
func (l *Lock) Path() string { return l.path }

// TryLock takes the lock in mode m without waiting: it fails with
// errdefs.ErrBusy while another open file description holds it in a
// conflicting mode. On a lock already held it converts the mode, which
// flock does by dropping and retaking, so it may lose the lock to another
// waiter.
func (l *Lock) TryLock(m Mode) error {
	return l.flock(m.how() | unix.LOCK_NB)
}

// Lock takes the lock in mode m, waiting for as long as it is held in a
// conflicting mode or until ctx ends; then it returns ctx's error. A ctx
// that can never end (context.Background) waits in the kernel; any other
// is polled (poll.WhileBusy), so no goroutine is left blocked in flock when
// ctx ends.
func (l *Lock) Lock(ctx context.Context, m Mode) error {
	if ctx.Done() == nil {
		return l.flock(m.how())
	}
	err := poll.WhileBusy(ctx, func() error { return l.TryLock(m) })
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return fmt.Errorf("waiting for the lock on %s: %w", l.path, context.Cause(ctx))
	}
	return err
}

func (l *Lock) flock(how int) error {
	if l == nil || l.f == nil {
		return fmt.Errorf("locking a closed lock: %w", errdefs.ErrInvalid)
	}
	for {
		err := unix.Flock(int(l.f.Fd()), how)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EWOULDBLOCK):
			return fmt.Errorf("%s is locked: %w", l.path, errdefs.ErrBusy)
		default:
			return fmt.Errorf("locking %s: %w", l.path, err)
		}
	}
}

// Linked reports whether l's path still names the file l holds open: it
// is false once the file has been removed or replaced, after which a lock
// on it protects nothing that others can find.
func (l *Lock) Linked() (bool, error) {
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

// Remove unlinks the lock's path. Only an exclusive holder may, and only
// for lock files that are taken with Acquire, which notices the removal.
func (l *Lock) Remove() error {
	err := os.Remove(l.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// InheritableFd returns the lock's descriptor with close-on-exec cleared,
// for handing the lock to a child through an exec (orbit's pod lock goes
// to stage1 as RKT_LOCK_FD). The child then holds the same lock; it stays
// held until both this Lock and the child have closed it.
func (l *Lock) InheritableFd() (int, error) {
	fd := int(l.f.Fd())
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, 0); err != nil {
		return -1, fmt.Errorf("clearing close-on-exec on the lock of %s: %w", l.path, err)
	}
	return fd, nil
}

// Close releases the lock (as far as this descriptor holds it) and closes
// the file. It is safe to call more than once, and on nil.
func (l *Lock) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Acquire locks a lock file that its exclusive holder may remove (Remove):
// it opens path, creating it, takes the lock in mode m, waiting until ctx
// ends, and checks that path still names the file it locked. If the file
// was removed or replaced meanwhile it starts again on the new one, so a
// lock on a removed file never counts.
func Acquire(ctx context.Context, path string, m Mode) (*Lock, error) {
	return acquire(path, func(l *Lock) error { return l.Lock(ctx, m) })
}

// TryAcquire is Acquire without waiting: it fails with errdefs.ErrBusy
// while another holds the lock in a conflicting mode.
func TryAcquire(path string, m Mode) (*Lock, error) {
	return acquire(path, func(l *Lock) error { return l.TryLock(m) })
}

func acquire(path string, lock func(*Lock) error) (*Lock, error) {
	for {
		l, err := Create(path, 0o644)
		if err != nil {
			return nil, err
		}
		err = lock(l)
		linked := false
		if err == nil {
			linked, err = l.Linked()
		}
		if err != nil {
			l.Close()
			return nil, err
		}
		if linked {
			return l, nil
		}
		l.Close()
	}
}

// HeldByOther reports whether someone holds path locked exclusively, with
// three system calls (open, a non-blocking shared flock, close) and no
// *os.File: commands that look at every pod probe each one's lock.
func HeldByOther(path string) (bool, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	for {
		err = unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB)
		switch {
		case err == nil:
			return false, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EWOULDBLOCK):
			return true, nil
		default:
			return false, fmt.Errorf("locking %s: %w", path, err)
		}
	}
}
