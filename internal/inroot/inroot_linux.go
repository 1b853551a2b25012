// Package inroot opens paths inside a root directory that an image or an
// app controls, as a process chrooted there would see them: symbolic links
// are followed with the root as "/" (an absolute target starts again at the
// root, ".." stops at it) and magic links (/proc/self/root and the like)
// are refused, so nothing planted in the root leads outside it.
//
// It uses openat2(2) with RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS, where the
// kernel does the confinement. On kernels without openat2 (before Linux
// 5.6), or where a seccomp profile refuses it, it walks the path one
// component at a time instead, opening each with O_NOFOLLOW relative to
// the one before and reading symbolic links itself.
//
// A path is cleaned lexically before it is resolved ("a/../b" is "b"), as
// the paths orbit resolves come from manifests and mean what they say.
package inroot

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSymlinks is how many symbolic links one lookup may follow, as the
// kernel's own limit.
const maxSymlinks = 40

// Root resolves paths inside one directory, whose descriptor it holds.
type Root struct {
	fd   int  // O_PATH (or any) descriptor of the root directory
	walk bool // openat2 is unavailable: walk component by component
}

// OpenRoot opens dir as a Root.
func OpenRoot(dir string) (*Root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return New(fd), nil
}

// New returns a Root for the directory open as fd, and takes fd over:
// Close closes it. It asks the kernel once whether openat2 works and walks
// the paths itself if not.
func New(fd int) *Root {
	r := &Root{fd: fd}
	probe, err := unix.Openat2(fd, ".", &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT,
	})
	if err == nil {
		unix.Close(probe)
	} else if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		// EPERM: some seccomp profiles refuse system calls they do not know.
		r.walk = true
	}
	return r
}

// WithoutOpenat2 returns a Root that always walks, as New does on kernels
// without openat2, so that callers can test their code on that path too.
func WithoutOpenat2(fd int) *Root {
	return &Root{fd: fd, walk: true}
}

// Fd is the root's descriptor, for the system calls that take one (fchdir,
// mount_setattr); it stays the Root's.
func (r *Root) Fd() int { return r.fd }

// Close closes the root's descriptor. It is safe to call more than once.
func (r *Root) Close() error {
	if r.fd < 0 {
		return nil
	}
	err := unix.Close(r.fd)
	r.fd = -1
	return err
}

// clean makes p relative to the root: "" and "/" are the root itself.
func clean(p string) string {
	rel := strings.TrimLeft(path.Clean("/"+p), "/")
	if rel == "" {
		return "."
	}
	return rel
}

// Open opens p inside the root with the open(2) flags given (O_CLOEXEC is
// added; O_CREAT is refused: see MkdirAll and CreateFile) and returns the
// descriptor. Errors are *os.PathError naming p, so errors.Is finds the
// errno (ENOENT, ENOTDIR, ELOOP).
func (r *Root) Open(p string, flags int) (int, error) {
	if flags&unix.O_CREAT != 0 || flags&unix.O_TMPFILE == unix.O_TMPFILE {
		return -1, &os.PathError{Op: "open", Path: p, Err: unix.EINVAL}
	}
	rel := clean(p)
	var fd int
	var err error
	if r.walk {
		fd, err = r.walkOpen(rel, flags|unix.O_CLOEXEC)
	} else {
		fd, err = r.openat2(rel, flags|unix.O_CLOEXEC)
	}
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return fd, nil
}

func (r *Root) openat2(rel string, flags int) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags), Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	for {
		fd, err := unix.Openat2(r.fd, rel, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			// EAGAIN: a rename raced with the lookup; the kernel asks
			// for a retry.
			continue
		}
		return fd, err
	}
}

// walkOpen resolves rel the way RESOLVE_IN_ROOT does and opens the result
// with flags. Every component is opened with O_NOFOLLOW relative to its
// parent's descriptor, and ".." goes back to the descriptor the walk came
// from, never above the root; a symbolic link's target is read and walked
// in its place (from the root if absolute).
func (r *Root) walkOpen(rel string, flags int) (int, error) {
	links := 0
	for {
		dir, name, err := r.walkParent(rel, &links)
		if err != nil {
			return -1, err
		}
		fd, err := unix.Openat(dir, name, flags|unix.O_NOFOLLOW, 0)
		unix.Close(dir)
		if err != nil {
			if err == unix.ELOOP && links < maxSymlinks {
				// The last component became a symbolic link since it was
				// looked at: resolve again.
				links++
				continue
			}
			return -1, err
		}
		if flags&unix.O_PATH != 0 {
			// O_PATH|O_NOFOLLOW opens a symbolic link itself rather than
			// failing; one put there since must be followed, not handed out.
			var st unix.Stat_t
			if err := unix.Fstat(fd, &st); err != nil {
				unix.Close(fd)
				return -1, err
			}
			if st.Mode&unix.S_IFMT == unix.S_IFLNK {
				unix.Close(fd)
				if links++; links > maxSymlinks {
					return -1, unix.ELOOP
				}
				continue
			}
		}
		return fd, nil
	}
}

// walkParent resolves every component of rel but the last, and the last
// too while it is a symbolic link. It returns an O_PATH descriptor of the
// directory that holds what rel names and that thing's name there ("."
// when rel names a directory reached through "." or ".."), which may not
// exist. links counts the symbolic links followed across retries.
func (r *Root) walkParent(rel string, links *int) (dir int, name string, err error) {
	cur, err := unix.Openat(r.fd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", err
	}
	var parents []int // descriptors of the directories above cur
	fail := func(err error) (int, string, error) {
		unix.Close(cur)
		for _, fd := range parents {
			unix.Close(fd)
		}
		return -1, "", err
	}
	todo := splitPath(rel)
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			if len(todo) == 0 {
				name = "."
			}
			continue
		case "..":
			if n := len(parents); n > 0 {
				unix.Close(cur)
				cur, parents = parents[n-1], parents[:n-1]
			}
			if len(todo) == 0 {
				name = "."
			}
			continue
		}
		name = c
		fd, err := unix.Openat(cur, c, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.ENOENT && len(todo) == 0 {
			break // the last component may be missing
		}
		if err != nil {
			return fail(err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return fail(err)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			target, err := readlinkFd(fd)
			unix.Close(fd)
			if err == nil && *links >= maxSymlinks {
				err = unix.ELOOP
			}
			if err != nil {
				return fail(err)
			}
			*links++
			if strings.HasPrefix(target, "/") {
				// Absolute: start again from the root.
				for _, p := range parents {
					unix.Close(p)
				}
				parents = nil
				unix.Close(cur)
				cur, err = unix.Openat(r.fd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
				if err != nil {
					return fail(err)
				}
			}
			todo = append(splitPath(target), todo...)
		case unix.S_IFDIR:
			if len(todo) == 0 {
				unix.Close(fd)
				break
			}
			parents = append(parents, cur)
			cur = fd
		default:
			unix.Close(fd)
			if len(todo) > 0 {
				return fail(unix.ENOTDIR)
			}
		}
	}
	for _, fd := range parents {
		unix.Close(fd)
	}
	return cur, name, nil
}

func splitPath(p string) []string {
	return strings.Split(strings.Trim(p, "/"), "/")
}

// readlinkFd reads the target of the symbolic link an O_PATH descriptor
// names.
func readlinkFd(fd int) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(fd, "", buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size > 1<<16 {
			return "", unix.ENAMETOOLONG
		}
	}
}

// MkdirAll returns an O_PATH descriptor of the directory p inside the
// root, creating it and its missing parents (mode 0755) on the way. Each
// is made with mkdirat relative to its parent's descriptor, so a symbolic
// link met on the way is followed inside the root, and one that dangles is
// an error (ENOENT) rather than something to create through.
func (r *Root) MkdirAll(p string) (int, error) {
	return r.create(p, true)
}

// CreateFile is MkdirAll for a file: it creates p as an empty file (mode
// 0644) unless something is there already, with its missing parent
// directories, and returns an O_PATH descriptor of what p names.
func (r *Root) CreateFile(p string) (int, error) {
	return r.create(p, false)
}

func (r *Root) create(p string, dir bool) (int, error) {
	openFlags := unix.O_PATH
	if dir {
		openFlags |= unix.O_DIRECTORY
	}
	fd, err := r.Open(p, openFlags)
	if err == nil || !errors.Is(err, unix.ENOENT) {
		return fd, err
	}
	rel := clean(p)
	comps := splitPath(rel)
	parent, err := unix.Openat(r.fd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	for i, c := range comps {
		sofar := strings.Join(comps[:i+1], "/")
		last := i == len(comps)-1
		flags := unix.O_PATH | unix.O_DIRECTORY
		if last {
			flags = openFlags
		}
		fd, err := r.Open(sofar, flags)
		if errors.Is(err, unix.ENOENT) {
			if last && !dir {
				var made int
				made, err = unix.Openat(parent, c, unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
				if err == nil {
					unix.Close(made)
				}
			} else {
				err = unix.Mkdirat(parent, c, 0o755)
			}
			if err != nil && err != unix.EEXIST {
				unix.Close(parent)
				return -1, &os.PathError{Op: "create", Path: "/" + sofar, Err: err}
			}
			fd, err = r.Open(sofar, flags)
			if errors.Is(err, unix.ENOENT) {
				err = fmt.Errorf("/%s is a dangling symbolic link: %w", sofar, unix.ENOENT)
			}
		}
		unix.Close(parent)
		if err != nil {
			return -1, err
		}
		parent = fd
	}
	return parent, nil
}
