package stage2

import (
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/inroot"
)

// Every mount inside the app's root targets a descriptor opened inside it
// (package inroot), named to mount(2) through /proc/self/fd/N: the kernel
// mounts on exactly the inode that was resolved inside the root, so a
// symbolic link swapped in between can not redirect the mount onto the
// host.

// fdPath names an open descriptor for mount(2).
func fdPath(fd int) string { return "/proc/self/fd/" + strconv.Itoa(fd) }

// mountInRoot performs one of the app's mounts.
func mountInRoot(root *inroot.Root, m Mount) error {
	fd, err := openMountTarget(root, m)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if m.isBind() {
		flags := uintptr(unix.MS_BIND)
		if m.Recursive {
			flags |= unix.MS_REC
		}
		if err := unix.Mount(m.Source, fdPath(fd), "", flags, ""); err != nil {
			return fmt.Errorf("bind %s: %w", m.Source, err)
		}
		// A bind mount takes its flags only from a second step.
		attrs := m.Flags & bindAttrFlags
		if m.ReadOnly {
			attrs |= unix.MS_RDONLY
		}
		if attrs != 0 {
			return setBindAttrs(root, m.Target, attrs, m.Recursive)
		}
		return nil
	}
	flags := m.Flags
	if m.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount(m.Source, fdPath(fd), m.FSType, flags, m.Data); err != nil {
		return fmt.Errorf("mount %s (%s): %w", m.Source, m.FSType, err)
	}
	return nil
}

// openMountTarget opens m.Target inside the root, creating it (and its
// missing parents) when m asks for it. A dangling symbolic link in the way
// is an error rather than something to create through.
func openMountTarget(root *inroot.Root, m Mount) (int, error) {
	fd, err := root.Open(m.Target, unix.O_PATH)
	switch {
	case err == nil || !errors.Is(err, unix.ENOENT):
		return fd, err
	case m.CreateDir && !(m.isBind() && sourceIsFile(m.Source)):
		return root.MkdirAll(m.Target)
	case m.CreateFile, m.CreateDir:
		// A bind of a file (a host volume whose source is a file, as in
		// rkt) needs a file to mount on.
		return root.CreateFile(m.Target)
	}
	return fd, err
}

// sourceIsFile reports whether a bind mount's source exists and is not a
// directory.
func sourceIsFile(source string) bool {
	var st unix.Stat_t
	return unix.Stat(source, &st) == nil && st.Mode&unix.S_IFMT != unix.S_IFDIR
}

// bindAttrFlags are the MS_* flags a bind mount can be given after it is
// made.
const bindAttrFlags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC |
	unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME | unix.MS_STRICTATIME

// setBindAttrs gives the mount at p inside the root the MS_* flags in
// flags (a subset of bindAttrFlags), with its submounts when recursive. p
// is opened again so that the descriptor names the mount itself, not what
// it covers.
func setBindAttrs(root *inroot.Root, p string, flags uintptr, recursive bool) error {
	fd, err := root.Open(p, unix.O_PATH)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return setMountAttrs(fd, flags, recursive)
}

// setMountAttrs sets MS_* flags on the mount whose root fd is.
// mount_setattr(2) (Linux 5.12) does it recursively and leaves the mount's
// other flags alone; on older kernels a bind remount changes the top mount
// only, repeating the flags it already has.
func setMountAttrs(fd int, flags uintptr, recursive bool) error {
	at := uint(unix.AT_EMPTY_PATH)
	if recursive {
		at |= unix.AT_RECURSIVE
	}
	attr := unix.MountAttr{}
	for _, f := range []struct {
		ms   uintptr
		attr uint64
	}{
		{unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY},
		{unix.MS_NOSUID, unix.MOUNT_ATTR_NOSUID},
		{unix.MS_NODEV, unix.MOUNT_ATTR_NODEV},
		{unix.MS_NOEXEC, unix.MOUNT_ATTR_NOEXEC},
		{unix.MS_NODIRATIME, unix.MOUNT_ATTR_NODIRATIME},
	} {
		if flags&f.ms != 0 {
			attr.Attr_set |= f.attr
		}
	}
	// The access-time mode is one field: setting it clears the old one.
	for _, f := range []struct {
		ms   uintptr
		attr uint64
	}{
		{unix.MS_NOATIME, unix.MOUNT_ATTR_NOATIME},
		{unix.MS_RELATIME, unix.MOUNT_ATTR_RELATIME},
		{unix.MS_STRICTATIME, unix.MOUNT_ATTR_STRICTATIME},
	} {
		if flags&f.ms != 0 {
			attr.Attr_set |= f.attr
			attr.Attr_clr |= unix.MOUNT_ATTR__ATIME
			break
		}
	}
	err := unix.MountSetattr(fd, "", at, &attr)
	if err != unix.ENOSYS {
		if err != nil {
			return fmt.Errorf("mount_setattr: %w", err)
		}
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return fmt.Errorf("statfs: %w", err)
	}
	// The flags the mount already has must be repeated, or the kernel
	// refuses to clear the ones locked by a user namespace.
	keep := uintptr(st.Flags) & (unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC |
		unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	if flags&(unix.MS_NOATIME|unix.MS_RELATIME|unix.MS_STRICTATIME) != 0 {
		keep &^= unix.MS_NOATIME | unix.MS_RELATIME
	}
	if err := unix.Mount("", fdPath(fd), "", unix.MS_BIND|unix.MS_REMOUNT|keep|flags, ""); err != nil {
		return fmt.Errorf("remount: %w", err)
	}
	return nil
}

// maskPath hides p inside the root: /dev/null over a file, an empty
// read-only tmpfs over a directory. A missing path is left alone.
func maskPath(root *inroot.Root, p string) error {
	fd, err := root.Open(p, unix.O_PATH)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		err = unix.Mount("tmpfs", fdPath(fd), "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=0555,nr_inodes=1")
	} else {
		err = unix.Mount("/dev/null", fdPath(fd), "", unix.MS_BIND, "")
	}
	if err != nil {
		return fmt.Errorf("mount over it: %w", err)
	}
	return nil
}

// readOnlyPath makes p inside the root read-only, with whatever is mounted
// below it. A missing path is left alone.
func readOnlyPath(root *inroot.Root, p string) error {
	fd, err := root.Open(p, unix.O_PATH)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return err
	}
	err = unix.Mount(fdPath(fd), fdPath(fd), "", unix.MS_BIND|unix.MS_REC, "")
	unix.Close(fd)
	if err != nil {
		return fmt.Errorf("bind onto itself: %w", err)
	}
	return setBindAttrs(root, p, unix.MS_RDONLY, true)
}

// switchRoot makes the mount point rootfd (opened after it was mounted) the
// process's root directory and cwd. pivot_root(2) is used so the host's
// root is unmounted from the app's mount namespace altogether: with
// chroot(2) alone, an app that keeps CAP_SYS_CHROOT (it is in the default
// set) could climb back out to the host. pivot_root is refused when the
// current root is the initramfs rootfs; only then does the launcher fall
// back to chroot.
func switchRoot(rootfd int) error {
	if err := unix.Fchdir(rootfd); err != nil {
		return err
	}
	err := unix.PivotRoot(".", ".")
	if err == unix.EINVAL {
		if err := unix.Chroot("."); err != nil {
			return fmt.Errorf("chroot: %w", err)
		}
		return unix.Chdir("/")
	}
	if err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	// The old root is now stacked on top of the new one at "/". It is a
	// slave (Launch made "/" rslave), so detaching it here leaves the
	// host's mounts alone.
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the old root: %w", err)
	}
	return unix.Chdir("/")
}
