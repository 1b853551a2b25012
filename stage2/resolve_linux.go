package stage2

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/inroot"
)

// The app's root filesystem comes from an image and is hostile: a symbolic
// link such as /etc/passwd -> /../../../etc/shadow or /proc -> /host/proc
// must never lead the launcher (which runs as root on the host) outside of
// it. Every path inside the root is therefore resolved through an
// inroot.Root, which treats the root as "/" for "..", absolute symbolic
// links and all, and refuses magic links.

// maxIDFile bounds how much of an image's passwd or group file is read.
const maxIDFile = 16 << 20

// openRootFile opens a regular file inside root for reading. It reports
// errdefs.ErrNotFound when the file is missing.
func openRootFile(root *inroot.Root, p string) (*os.File, error) {
	// O_NONBLOCK: a FIFO planted in the image must not hang the launcher.
	fd, err := root.Open(p, unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("%s: %w", p, errdefs.ErrNotFound)
		}
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("%s is not a regular file: %w", p, errdefs.ErrInvalid)
	}
	return os.NewFile(uintptr(fd), p), nil
}

// statInRoot stats p inside root, following symbolic links within it.
func statInRoot(root *inroot.Root, p string) (unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := root.Open(p, unix.O_PATH)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return st, fmt.Errorf("%s: %w", p, errdefs.ErrNotFound)
		}
		return st, err
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &st); err != nil {
		return st, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	return st, nil
}
