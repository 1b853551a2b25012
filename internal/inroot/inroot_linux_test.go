package inroot

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// hostile builds, in a temp dir, a directory "outside" holding the file a
// resolver must never reach, and a root full of symbolic links that try to
// reach it. Inside the root, decoys stand where the escapes land when they
// are confined. It returns the root's path and the outside directory.
func hostile(t *testing.T) (root, outside string) {
	t.Helper()
	base := t.TempDir()
	outside = filepath.Join(base, "outside")
	root = filepath.Join(base, "root")
	files := map[string]string{
		filepath.Join(outside, "secret"):           "outside",
		filepath.Join(root, "etc/passwd"):          "inside",
		filepath.Join(root, "outside/secret"):      "decoy",
		filepath.Join(root, outside, "secret"):     "abs-decoy",
		filepath.Join(root, "dir/sub/placeholder"): "",
		filepath.Join(root, "plain"):               "plain",
	}
	for p, data := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"up":           "../../../outside",        // climbs above the root
		"esc":          "../../../outside/secret", // the same, as the last component
		"abs":          outside,                   // the real outside path, absolute
		"absfile":      filepath.Join(outside, "secret"),
		"rootlink":     "/",
		"dotdot":       "..",
		"dir/sub/back": "../../..",
		"file":         "etc/passwd",
		"loop1":        "loop2",
		"loop2":        "loop1",
		"self":         "self",
		"dangling":     "/nowhere",
		"procroot":     "/proc/self/root/etc/passwd",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	// A chain of links: chain0 -> chain1 -> ... -> chainN -> plain.
	const n = 45
	for i := 0; i < n; i++ {
		if err := os.Symlink("chain"+strconv.Itoa(i+1), filepath.Join(root, "chain"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("plain", filepath.Join(root, "chain"+strconv.Itoa(n))); err != nil {
		t.Fatal(err)
	}
	return root, outside
}

func openDir(t *testing.T, dir string) int {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// bothWays runs f with a Root that uses openat2 and with one that walks.
func bothWays(t *testing.T, f func(t *testing.T, newRoot func(fd int) *Root)) {
	closing := func(newRoot func(int) *Root) func(int) *Root {
		return func(fd int) *Root {
			r := newRoot(fd)
			t.Cleanup(func() { r.Close() })
			return r
		}
	}
	t.Run("openat2", func(t *testing.T) {
		probe, err := OpenRoot(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		defer probe.Close()
		if probe.walk {
			if os.Getenv("CI") == "true" {
				t.Fatal("openat2 with RESOLVE_IN_ROOT is unavailable")
			}
			t.Skip("openat2 with RESOLVE_IN_ROOT is unavailable")
		}
		f(t, closing(New))
	})
	t.Run("walk", func(t *testing.T) { f(t, closing(WithoutOpenat2)) })
}

func readAt(r *Root, p string) (string, error) {
	fd, err := r.Open(p, unix.O_RDONLY|unix.O_NONBLOCK)
	if err != nil {
		return "", err
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), err
}

func TestOpenStaysInsideTheRoot(t *testing.T) {
	bothWays(t, func(t *testing.T, newRoot func(int) *Root) {
		root, _ := hostile(t)
		r := newRoot(openDir(t, root))
		for _, c := range []struct{ path, want string }{
			{"/etc/passwd", "inside"},
			{"etc/passwd", "inside"},
			{"../../../../etc/passwd", "inside"},
			{"up/secret", "decoy"},
			{"esc", "decoy"},
			{"abs/secret", "abs-decoy"},
			{"absfile", "abs-decoy"},
			{"rootlink/etc/passwd", "inside"},
			{"rootlink/../../etc/passwd", "inside"},
			{"dotdot/dotdot/etc/passwd", "inside"},
			{"dir/sub/back/etc/passwd", "inside"},
			{"dir/sub/back/outside/secret", "decoy"},
			{"file", "inside"},
			{"chain" + strconv.Itoa(45-maxSymlinks+2), "plain"},
		} {
			got, err := readAt(r, c.path)
			if err != nil || got != c.want {
				t.Errorf("%s: read %q, %v; want %q", c.path, got, err, c.want)
			}
		}
	})
}

func TestOpenRefusesWhatCannotBeResolved(t *testing.T) {
	// Both ways must fail the same way: callers tell a bad image from a
	// broken host by the errno.
	bothWays(t, func(t *testing.T, newRoot func(int) *Root) {
		root, _ := hostile(t)
		r := newRoot(openDir(t, root))
		for _, c := range []struct {
			path string
			want error
		}{
			{"loop1", unix.ELOOP},
			{"self/x", unix.ELOOP},
			{"chain0", unix.ELOOP},
			{"dangling", unix.ENOENT},
			{"up/nothing", unix.ENOENT},
			{"etc/passwd/x", unix.ENOTDIR},
		} {
			_, err := readAt(r, c.path)
			var pe *os.PathError
			if !errors.Is(err, c.want) || !errors.As(err, &pe) || pe.Path != c.path {
				t.Errorf("%s: %v, want a PathError for it with %v", c.path, err, c.want)
			}
		}
		if _, err := r.Open("new", unix.O_RDWR|unix.O_CREAT); !errors.Is(err, unix.EINVAL) {
			t.Errorf("Open with O_CREAT: %v, want EINVAL", err)
		}
	})
}

func TestOpenPathFollowsTheLastLink(t *testing.T) {
	bothWays(t, func(t *testing.T, newRoot func(int) *Root) {
		root, _ := hostile(t)
		r := newRoot(openDir(t, root))
		for p, want := range map[string]uint32{"file": unix.S_IFREG, "up": unix.S_IFDIR, "rootlink": unix.S_IFDIR, "/": unix.S_IFDIR} {
			fd, err := r.Open(p, unix.O_PATH)
			if err != nil {
				t.Errorf("%s: %v", p, err)
				continue
			}
			var st unix.Stat_t
			unix.Fstat(fd, &st)
			unix.Close(fd)
			if st.Mode&unix.S_IFMT != want {
				t.Errorf("%s: opened mode %o, want type %o", p, st.Mode, want)
			}
		}
		if _, err := r.Open("file", unix.O_PATH|unix.O_DIRECTORY); !errors.Is(err, unix.ENOTDIR) {
			t.Errorf("file as a directory: %v", err)
		}
	})
}

// A magic link (/proc/self/root) would lead to the host's root; with
// /proc mounted inside the root it must be refused or read as a plain
// link inside the root.
func TestMagicLinksDoNotLeave(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root to mount proc")
		}
		t.Skip("needs root to mount proc")
	}
	bothWays(t, func(t *testing.T, newRoot func(int) *Root) {
		root, _ := hostile(t)
		proc := filepath.Join(root, "proc")
		if err := os.Mkdir(proc, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("proc", proc, "proc", 0, ""); err != nil {
			t.Skipf("mounting proc: %v", err)
		}
		t.Cleanup(func() { unix.Unmount(proc, unix.MNT_DETACH) })
		r := newRoot(openDir(t, root))
		for _, p := range []string{"/proc/self/root/etc/passwd", "procroot"} {
			got, err := readAt(r, p)
			if err == nil && got != "inside" {
				t.Errorf("%s: read %q through a magic link", p, got)
			}
		}
	})
}

func TestMkdirAllAndCreateFileStayInside(t *testing.T) {
	bothWays(t, func(t *testing.T, newRoot func(int) *Root) {
		root, outside := hostile(t)
		r := newRoot(openDir(t, root))

		fd, err := r.MkdirAll("up/new/dir")
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		if _, err := os.Stat(filepath.Join(root, "outside/new/dir")); err != nil {
			t.Errorf("up/new/dir not made inside the root: %v", err)
		}
		if _, err := os.Stat(filepath.Join(outside, "new")); err == nil {
			t.Error("MkdirAll wrote outside the root")
		}

		fd, err = r.CreateFile("abs/made")
		if err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		unix.Fstat(fd, &st)
		unix.Close(fd)
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			t.Errorf("CreateFile made mode %o", st.Mode)
		}
		if _, err := os.Stat(filepath.Join(root, outside, "made")); err != nil {
			t.Errorf("abs/made not made inside the root: %v", err)
		}
		if _, err := os.Stat(filepath.Join(outside, "made")); err == nil {
			t.Error("CreateFile wrote outside the root")
		}

		// An existing file is opened, not replaced.
		fd, err = r.CreateFile("file")
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		if got, _ := os.ReadFile(filepath.Join(root, "etc/passwd")); string(got) != "inside" {
			t.Errorf("CreateFile changed an existing file: %q", got)
		}

		// A dangling link is not created through.
		if _, err := r.MkdirAll("dangling/x"); !errors.Is(err, unix.ENOENT) {
			t.Errorf("MkdirAll through a dangling link: %v, want ENOENT", err)
		}
		if _, err := os.Lstat(filepath.Join(root, "nowhere")); err == nil {
			t.Error("MkdirAll created a dangling link's target")
		}
		if _, err := r.MkdirAll("etc/passwd/x"); !errors.Is(err, unix.ENOTDIR) {
			t.Errorf("MkdirAll below a file: %v, want ENOTDIR", err)
		}
	})
}

func TestOpenRootAndClose(t *testing.T) {
	if _, err := OpenRoot(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OpenRoot of a missing directory: %v", err)
	}
	r, err := OpenRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fd := r.Fd()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := unix.Fstat(fd, new(unix.Stat_t)); err != unix.EBADF {
		t.Fatalf("the descriptor is still open after Close: %v", err)
	}
}
