package cgroup

import (
	"errors"
	"io/fs"
)

// Populated reports whether any process is in one of the cgroup
// directories dirs or in a group below one of them. Directories that do
// not exist hold nothing. It works the same on cgroup v1 and v2: both list
// a group's members in cgroup.procs.
func Populated(dirs []string) (bool, error) {
	for _, root := range dirs {
		groups, err := subtree(root)
		if err != nil {
			return false, err
		}
		for _, g := range groups {
			pids, err := readProcs(g)
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed while we look
			}
			if err != nil {
				return false, err
			}
			if len(pids) > 0 {
				return true, nil
			}
		}
	}
	return false, nil
}
