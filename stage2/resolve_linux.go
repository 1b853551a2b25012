package stage2

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// The app's root filesystem comes from an image and is hostile: a symbolic
// link such as /etc/passwd -> /../../../etc/shadow or /proc -> /host/proc
// must never lead the launcher (which runs as root on the host) outside of
// it. Every path inside the root is therefore resolved with openat2(2) and
// RESOLVE_IN_ROOT, which makes the kernel treat the root's descriptor as "/"
// for "..", absolute symbolic links and all, and refuses magic links.

// resolveFlags are the RESOLVE_* flags for every lookup inside a root.
const resolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// openRoot opens dir as the anchor for lookups inside it.
func openRoot(dir string) (int, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return fd, nil
}

// openInRoot opens p (taken relative to rootfd, "/" being rootfd itself)
// without leaving the root.
func openInRoot(rootfd int, p string, flags int) (int, error) {
	rel := strings.TrimLeft(path.Clean("/"+p), "/")
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: resolveFlags}
	for {
		fd, err := unix.Openat2(rootfd, rel, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			// EAGAIN: a rename raced with the lookup; the kernel asks to
			// retry.
			continue
		}
		if err == unix.ENOSYS {
			return -1, fmt.Errorf("open %s: openat2 is not supported (Linux 5.6 or later is needed): %w", p, err)
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: p, Err: err}
		}
		return fd, nil
	}
}

// maxIDFile bounds how much of an image's passwd or group file is read.
const maxIDFile = 16 << 20

// openRootFile opens a regular file inside root for reading. It reports
// errdefs.ErrNotFound when the file is missing.
func openRootFile(rootfd int, p string) (*os.File, error) {
	// O_NONBLOCK: a FIFO planted in the image must not hang the launcher.
	fd, err := openInRoot(rootfd, p, unix.O_RDONLY|unix.O_NOCTTY|unix.O_NONBLOCK)
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
func statInRoot(rootfd int, p string) (unix.Stat_t, error) {
	var st unix.Stat_t
	fd, err := openInRoot(rootfd, p, unix.O_PATH)
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
