package cgroup

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// PrivateWritable returns a writable view of the hierarchies a Group uses
// (the tracked v1 controllers and the cgroup2 tree) that no path in the
// mount namespace leads to, and makes every cgroup mount of the layout
// read-only.
//
// Each hierarchy's mount is cloned into a detached mount (open_tree(2),
// Linux 5.2; on older kernels a bind mount that is unmounted again at
// once), made writable, and reached only through a descriptor of the
// calling process: the returned layout's mount points are
// /proc/self/fd/N. The mount points everyone sees, and the copies a
// process makes of them later (an app's /sys), stay read-only: a process of
// the pod that reaches the caller's root (/proc/1/root) finds nothing to
// write. The descriptors are close-on-exec and live as long as the process.
func (l *Layout) PrivateWritable() (*Layout, error) {
	priv := &Layout{Mode: l.Mode}
	tracked := func(h *Hierarchy) bool {
		for _, c := range trackedV1 {
			if h.Has(c) {
				return true
			}
		}
		return false
	}
	for _, h := range l.V1 {
		if !tracked(h) {
			continue
		}
		c, err := privateCopy(h)
		if err != nil {
			return nil, err
		}
		priv.V1 = append(priv.V1, c)
	}
	if l.Unified != nil {
		c, err := privateCopy(l.Unified)
		if err != nil {
			return nil, err
		}
		priv.Unified = c
	}
	for _, h := range l.hierarchies() {
		if err := unix.Mount("", h.Mountpoint, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
			return nil, fmt.Errorf("making %s read-only: %w", h.Mountpoint, err)
		}
	}
	return priv, nil
}

// privateCopy returns h with its mount point replaced by a writable,
// detached copy of its mount.
func privateCopy(h *Hierarchy) (*Hierarchy, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, h.Mountpoint, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err == nil {
		attr := unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY}
		if err = unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
			unix.Close(fd)
		}
	}
	if errors.Is(err, unix.ENOSYS) {
		fd, err = detachedBind(h.Mountpoint)
	}
	if err != nil {
		return nil, fmt.Errorf("a writable copy of %s: %w", h.Mountpoint, err)
	}
	c := *h
	c.Mountpoint = "/proc/self/fd/" + strconv.Itoa(fd)
	return &c, nil
}

// detachedBind is privateCopy's way on kernels without open_tree and
// mount_setattr: a private bind mount on a fresh directory, made writable,
// opened, and unmounted again (the descriptor keeps it alive).
func detachedBind(src string) (int, error) {
	dir, err := os.MkdirTemp("", "orbit-cgroup-")
	if err != nil {
		return -1, err
	}
	defer os.Remove(dir)
	if err := unix.Mount(src, dir, "", unix.MS_BIND, ""); err != nil {
		return -1, err
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	if err := unix.Mount("", dir, "", unix.MS_PRIVATE, ""); err != nil {
		return -1, err
	}
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return -1, err
	}
	return unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
}
