package store

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/flock"
)

// The store's lock files (leases, trees, the removal turn) may be removed
// by whoever holds them exclusively; flock.Acquire and TryAcquire notice
// and lock the new file instead, so a lock on a removed file never counts.

// lockExisting locks an existing file or directory exclusively without
// waiting; ok is false if someone else holds it or it has gone.
func lockExisting(path string) (l *flock.Lock, ok bool, err error) {
	l, err = flock.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, false, nil
		}
		return nil, false, err
	}
	err = l.TryLock(flock.Exclusive)
	same := false
	if err == nil {
		same, err = l.Linked()
	}
	if err != nil || !same {
		l.Close()
		if errors.Is(err, errdefs.ErrBusy) {
			err = nil
		}
		return nil, false, err
	}
	return l, true, nil
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
