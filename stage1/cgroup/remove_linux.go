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

	"github.com/orbit-containers/orbit/internal/errdefs"
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
	var roots []string
	unified := ""
	for _, h := range l.hierarchies() {
		roots = append(roots, filepath.Join(h.Mountpoint, p))
		if h == l.Unified {
			unified = filepath.Join(h.Mountpoint, p)
		}
	}
	if err := removeTrees(roots, unified); err != nil {
		return fmt.Errorf("removing cgroup %s: %w", p, err)
	}
	return nil
}

// RemoveDirs removes groups given by their directories (as Group.Dirs
// lists them) with every group below them, killing what still runs in
// them. Directories that are not below one of the layout's cgroup mounts
// are refused; missing ones are skipped.
func (l *Layout) RemoveDirs(dirs []string) error {
	unified := ""
	for _, d := range dirs {
		d = filepath.Clean(d)
		h := l.hierarchyOf(d)
		if h == nil {
			return fmt.Errorf("removing cgroup %s: not in a cgroup hierarchy: %w", d, errdefs.ErrInvalid)
		}
		if h == l.Unified {
			unified = d
		}
	}
	return removeTrees(dirs, unified)
}

// hierarchyOf returns the hierarchy a directory strictly below a mount
// point belongs to.
func (l *Layout) hierarchyOf(dir string) *Hierarchy {
	for _, h := range l.hierarchies() {
		if strings.HasPrefix(dir, filepath.Clean(h.Mountpoint)+"/") {
			return h
		}
	}
	return nil
}

// removeTrees kills everything in the groups at roots and below, then
// removes them, deepest first.
func removeTrees(roots []string, unified string) error {
	var dirs []string // every cgroup of the sub-trees
	for _, root := range roots {
		sub, err := subtree(root)
		if err != nil {
			return err
		}
		dirs = append(dirs, sub...)
	}
	if len(dirs) == 0 {
		return nil
	}
	if u, err := subtree(unified); err != nil || len(u) == 0 {
		unified = ""
	}
	if err := killDirs(dirs, unified); err != nil {
		return err
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
	return errors.Join(errs...)
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
