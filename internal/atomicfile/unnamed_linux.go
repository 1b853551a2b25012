package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// CreateUnnamed is Create for long writes that a kill may cut short: the
// content is written to an unnamed file (O_TMPFILE) in path's directory,
// which gets a name only once it is complete and synced, so a process
// killed meanwhile leaves nothing behind under any name. The directory is
// resolved once, and every name made in it is made relative to it. Where
// the filesystem has no unnamed files, it is Create.
func CreateUnnamed(path string, mode os.FileMode, overwrite bool, fill func(io.Writer) error) error {
	dir, base := filepath.Dir(path), filepath.Base(path)
	d, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(d)
	if !overwrite {
		var st unix.Stat_t
		if err := unix.Fstatat(d, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
			return fmt.Errorf("%s: %w", path, errdefs.ErrAlreadyExists)
		}
	}
	fd, err := unix.Openat(d, ".", unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, uint32(mode.Perm()&0o600))
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
		return Create(path, mode, overwrite, fill)
	}
	if err != nil {
		return &os.PathError{Op: "create", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if err := fill(f); err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	link := func(name string) error {
		err := unix.Linkat(fd, "", d, name, unix.AT_EMPTY_PATH)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EPERM) {
			// AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc does not.
			err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), d, name, unix.AT_SYMLINK_FOLLOW)
		}
		return err
	}
	if !overwrite {
		// linkat never replaces: a file that appeared meanwhile stays.
		if err := link(base); errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("%s: %w", path, errdefs.ErrAlreadyExists)
		} else if err != nil {
			return &os.LinkError{Op: "link", Old: f.Name(), New: path, Err: err}
		}
		return unix.Fsync(d)
	}
	// Replacing takes a rename: the complete file gets a temporary name
	// first.
	for i := 0; ; i++ {
		tmp := "." + base + ".tmp-" + strconv.Itoa(os.Getpid()) + "-" + strconv.Itoa(i)
		err := link(tmp)
		if errors.Is(err, unix.EEXIST) && i < 100 {
			continue
		}
		if err != nil {
			return &os.LinkError{Op: "link", Old: f.Name(), New: filepath.Join(dir, tmp), Err: err}
		}
		if err := unix.Renameat(d, tmp, d, base); err != nil {
			unix.Unlinkat(d, tmp, 0)
			return &os.LinkError{Op: "rename", Old: filepath.Join(dir, tmp), New: path, Err: err}
		}
		return unix.Fsync(d)
	}
}
