package stage0

import (
	"github.com/orbit-containers/orbit/internal/flock"
)

// A pod's lock is an flock(2) on its directory (package flock): it survives
// the renames that move the pod between states and the exec into stage1,
// which inherits it (RKT_LOCK_FD), and the kernel drops it when the last
// process holding it ends.

// lockedByOther reports whether someone holds an exclusive lock on path.
func lockedByOther(path string) (bool, error) {
	return flock.HeldByOther(path)
}
