package aci

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// maxSymlinks is how many symlinks one lookup may follow, as the kernel's
// own limit.
const maxSymlinks = 40

// resolver opens directories by path inside a root directory: symlinks are
// followed as if the root were "/", and ".." stops at the root, so nothing
// an image planted can lead outside it. It uses openat2(RESOLVE_IN_ROOT),
// or an equivalent walk one component at a time on kernels without it.
type resolver struct {
	root     int  // O_PATH descriptor of the root directory
	fallback bool // openat2 is unavailable: walk component by component
}

func newResolver(root int) *resolver {
	r := &resolver{root: root}
	fd, err := unix.Openat2(root, ".", &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT,
	})
	if err == nil {
		unix.Close(fd)
	} else if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
		// EPERM: some seccomp profiles refuse syscalls they do not know.
		r.fallback = true
	}
	return r
}

// openDir returns an O_PATH descriptor of the directory rel (slash
// separated, relative to the root; "" is the root itself).
func (r *resolver) openDir(rel string) (int, error) {
	if r.fallback {
		return r.walk(rel)
	}
	for {
		fd, err := unix.Openat2(r.root, dotIfEmpty(rel), &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err == unix.EAGAIN || err == unix.EINTR {
			continue // a concurrent rename; retry as the man page advises
		}
		return fd, err
	}
}

func dotIfEmpty(s string) string {
	if s == "" {
		return "."
	}
	return s
}

// walk resolves rel the way RESOLVE_IN_ROOT does, opening one component at
// a time with O_NOFOLLOW and following symlinks by hand.
func (r *resolver) walk(rel string) (int, error) {
	cur, err := unix.Openat(r.root, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	var parents []int // descriptors of the directories above cur
	closeAll := func() {
		for _, fd := range parents {
			unix.Close(fd)
		}
		parents = nil
	}
	todo := splitPath(rel)
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if n := len(parents); n > 0 {
				unix.Close(cur)
				cur, parents = parents[n-1], parents[:n-1]
			}
			continue
		}
		fd, err := unix.Openat(cur, c, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			unix.Close(cur)
			closeAll()
			return -1, err
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			unix.Close(cur)
			closeAll()
			return -1, err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			parents = append(parents, cur)
			cur = fd
		case unix.S_IFLNK:
			target, err := readlinkFd(fd)
			unix.Close(fd)
			if err == nil && links >= maxSymlinks {
				err = unix.ELOOP
			}
			if err != nil {
				unix.Close(cur)
				closeAll()
				return -1, err
			}
			links++
			if strings.HasPrefix(target, "/") {
				// Absolute: start again from the root.
				unix.Close(cur)
				closeAll()
				cur, err = unix.Openat(r.root, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
				if err != nil {
					return -1, err
				}
			}
			todo = append(splitPath(target), todo...)
		default:
			unix.Close(fd)
			unix.Close(cur)
			closeAll()
			return -1, unix.ENOTDIR
		}
	}
	closeAll()
	return cur, nil
}

func splitPath(p string) []string {
	return strings.Split(strings.Trim(p, "/"), "/")
}

// readlinkFd reads the target of the symlink an O_PATH descriptor names.
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

// mkdirAll returns an O_PATH descriptor of the directory rel inside the
// root, creating missing directories (mode 0755) on the way. Components are
// resolved inside the root, so a symlink met on the way stays inside it.
func (r *resolver) mkdirAll(rel string) (int, error) {
	fd, err := r.openDir(rel)
	if err == nil || err != unix.ENOENT {
		return fd, err
	}
	comps := splitPath(rel)
	parent, err := r.openDir("")
	if err != nil {
		return -1, err
	}
	for i, c := range comps {
		prefix := strings.Join(comps[:i+1], "/")
		fd, err := r.openDir(prefix)
		if err == unix.ENOENT {
			if err := unix.Mkdirat(parent, c, 0o755); err != nil && err != unix.EEXIST {
				unix.Close(parent)
				return -1, fmt.Errorf("creating %q: %w", prefix, err)
			}
			fd, err = r.openDir(prefix)
		}
		unix.Close(parent)
		if err != nil {
			return -1, fmt.Errorf("opening %q: %w", prefix, err)
		}
		parent = fd
	}
	return parent, nil
}
