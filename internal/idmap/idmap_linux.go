// Package idmap makes ID-mapped mounts (mount_setattr(2) with
// MOUNT_ATTR_IDMAP, Linux 5.12): a view of a directory in which the owners
// of its files are shifted into a user namespace's range without a byte
// of the directory being written. orbit uses them to show the store's
// trees and host volumes to a pod run in a user namespace of its own.
package idmap

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Range is a user namespace's mapping: its IDs 0..Count-1 are the host's
// Shift..Shift+Count-1, for users and groups alike.
type Range struct {
	Shift, Count uint32
}

// UserNamespace returns a descriptor of a new user namespace with r's
// mapping, which ID-mapped mounts take their mapping from. The namespace
// is made by a child process that never runs: it stops at its exec
// (traced), and is killed once the namespace is opened; the descriptor
// keeps the namespace.
func UserNamespace(r Range) (*os.File, error) {
	runtime.LockOSThread() // the tracer is this thread
	defer runtime.UnlockOSThread()
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(r.Shift), Size: int(r.Count)}}
	cmd := exec.Command("/proc/self/exe")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: m,
		GidMappings: m,
		Ptrace:      true,
		Pdeathsig:   syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("making a user namespace: %w", err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	f, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	if err != nil {
		return nil, fmt.Errorf("opening the user namespace: %w", err)
	}
	return f, nil
}

// Clone returns a detached, read-only copy of the mount tree at path,
// ID-mapped into the user namespace ns. It fails when the kernel or the
// filesystem does not allow ID-mapped mounts.
func Clone(path string, ns *os.File) (*os.File, error) {
	fd, err := unix.OpenTree(unix.AT_FDCWD, path, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("cloning the mount of %s: %w", path, err)
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_RDONLY, Userns_fd: uint64(ns.Fd())}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ID-mapping %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// Attach mounts a detached mount (from Clone) on target, an existing
// directory.
func Attach(mnt *os.File, target string) error {
	if err := unix.MoveMount(int(mnt.Fd()), "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("mounting on %s: %w", target, err)
	}
	return nil
}

// Supported reports, by making and dropping such a mount, whether path can
// be ID-mapped into ns (nil) or why not.
func Supported(path string, ns *os.File) error {
	m, err := Clone(path, ns)
	if err != nil {
		return err
	}
	return m.Close()
}
