package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// rmdirTimeout bounds how long Remove retries a cgroup the kernel still
// reports busy (a killed process whose exit is not finished).
const rmdirTimeout = 5 * time.Second

// Remove removes the group path and every group below it from every
// hierarchy, killing the processes still in them first. Removing a group
// that does not exist is not an error.
func (l *Layout) Remove(path string) error {
	p, err := cleanPath(path)
	if err != nil {
		return err
	}
	var dirs []string // every cgroup of the sub-tree, in every hierarchy
	unified := ""
	for _, h := range l.hierarchies() {
		root := filepath.Join(h.Mountpoint, p)
		sub, err := subtree(root)
		if err != nil {
			return fmt.Errorf("removing cgroup %s: %w", p, err)
		}
		if len(sub) > 0 && h == l.Unified {
			unified = root
		}
		dirs = append(dirs, sub...)
	}
	if len(dirs) == 0 {
		return nil
	}
	if err := killDirs(dirs, unified); err != nil {
		return fmt.Errorf("removing cgroup %s: %w", p, err)
	}
	// Deepest first, so each directory is empty of sub-groups when its
	// turn comes.
	slices.SortStableFunc(dirs, func(a, b string) int {
		return strings.Count(b, "/") - strings.Count(a, "/")
	})
	var errs []error
	for _, d := range dirs {
		if err := rmdirRetry(d); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("removing cgroup %s: %w", p, err)
	}
	return nil
}

// subtree lists root and the cgroups below it; nothing when root is absent.
func subtree(root string) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // absent, or removed while we walk
			}
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	return dirs, err
}

func rmdirRetry(dir string) error {
	deadline := time.Now().Add(rmdirTimeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		err := unix.Rmdir(dir)
		if err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.EBUSY || time.Now().After(deadline) {
			return &os.PathError{Op: "rmdir", Path: dir, Err: err}
		}
		time.Sleep(wait)
	}
}
