package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Detect reads the calling process's view of the cgroup hierarchies from
// /proc/self/mountinfo and, for a cgroup2 mount, the controllers its root
// offers.
func Detect() (*Layout, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("detecting cgroups: %w", err)
	}
	defer f.Close()
	l, err := parseMountinfo(f)
	if err != nil {
		return nil, fmt.Errorf("detecting cgroups: %w", err)
	}
	if l.Unified != nil {
		b, err := os.ReadFile(filepath.Join(l.Unified.Mountpoint, "cgroup.controllers"))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("detecting cgroups: %w", err)
		}
		l.Unified.Controllers = strings.Fields(string(b))
	}
	return l, nil
}

// Exists reports whether the group exists in any hierarchy.
func (l *Layout) Exists(path string) bool {
	p, err := cleanPath(path)
	if err != nil {
		return false
	}
	for _, h := range l.hierarchies() {
		if fi, err := os.Stat(filepath.Join(h.Mountpoint, p)); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}
