package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// layer builds a layer's tar from "name" (file), "name/" (dir),
// "name->target" (symlink) and "name=>target" (hard link) specs.
func layer(t testing.TB, specs ...string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, s := range specs {
		hdr := &tar.Header{Name: s, Mode: 0o644, Typeflag: tar.TypeReg}
		switch {
		case strings.HasSuffix(s, "/"):
			hdr.Typeflag, hdr.Mode = tar.TypeDir, 0o755
		case strings.Contains(s, "=>"):
			hdr.Name, hdr.Linkname, _ = strings.Cut(s, "=>")
			hdr.Typeflag = tar.TypeLink
		case strings.Contains(s, "->"):
			hdr.Name, hdr.Linkname, _ = strings.Cut(s, "->")
			hdr.Typeflag = tar.TypeSymlink
		default:
			hdr.Size = int64(len(s))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			tw.Write([]byte(s))
		}
	}
	tw.Close()
	return buf.Bytes()
}

// needRoot skips a test that makes devices and trusted.* attributes.
func needRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("layer trees need root (devices, trusted.* attributes)")
		}
		t.Skip("layer trees need root (devices, trusted.* attributes)")
	}
}

// extractAll extracts layers (lowest first) and returns their trees' root
// filesystems top first, as overlayfs and Flatten take them.
func extractAll(t *testing.T, layers ...[]byte) ([]string, error) {
	t.Helper()
	lowers := make([]string, len(layers))
	for i, l := range layers {
		dir := filepath.Join(t.TempDir(), "tree")
		if _, err := ExtractLayer(context.Background(), bytes.NewReader(l), dir, NewBudget(1<<30)); err != nil {
			return nil, err
		}
		lowers[len(layers)-1-i] = filepath.Join(dir, "rootfs")
	}
	return lowers, nil
}

// listTree lists a directory's contents: "dir/", "link>target", "file".
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		switch {
		case d.IsDir():
			rel += "/"
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			rel += ">" + target
		}
		names = append(names, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return names
}

func flattened(t *testing.T, layers ...[]byte) []string {
	t.Helper()
	lowers, err := extractAll(t, layers...)
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "flat")
	if err := Flatten(context.Background(), lowers, dest); err != nil {
		t.Fatal(err)
	}
	return listTree(t, dest)
}

var whiteoutLayers = func(t testing.TB) [][]byte {
	return [][]byte{
		layer(t, "etc/", "etc/keep", "etc/gone", "opq/", "opq/old", "opq/sub/", "opq/sub/f", "dir/", "dir/sub/", "dir/sub/f", "file", "ln->etc/keep"),
		layer(t, "etc/.wh.gone", "opq/", "opq/.wh..wh..opq", "opq/new", ".wh.dir", "file", "etc/added", "etc/mine", "etc/.wh.mine", "ln/"),
		layer(t, "etc/own", "etc/hl=>etc/own", "./etc/again", ".wh.ln"),
	}
}

func TestLayerTreeHoldsOverlayWhiteouts(t *testing.T) {
	needRoot(t)
	ls := whiteoutLayers(t)
	lowers, err := extractAll(t, ls...)
	if err != nil {
		t.Fatal(err)
	}
	mid := lowers[1]
	for _, name := range []string{"etc/gone", "dir"} {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(mid, name), &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFCHR || st.Rdev != 0 {
			t.Errorf("%s: want a 0:0 character device, have mode %o rdev %d (%v)", name, st.Mode, st.Rdev, err)
		}
	}
	// A whiteout never hides what its own layer adds.
	if fi, err := os.Lstat(filepath.Join(mid, "etc/mine")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("etc/mine, added by the layer that whites it out: %v", err)
	}
	if !isOpaque(filepath.Join(mid, "opq")) || isOpaque(filepath.Join(mid, "etc")) {
		t.Error("opq should be opaque, and etc not")
	}
	if _, err := os.Lstat(filepath.Join(mid, "opq", ".wh..wh..opq")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the opaque marker is left as a file: %v", err)
	}
}

func TestFlattenHonoursWhiteouts(t *testing.T) {
	needRoot(t)
	got := flattened(t, whiteoutLayers(t)...)
	want := []string{"etc/", "etc/added", "etc/again", "etc/hl", "etc/keep", "etc/mine", "etc/own", "file", "opq/", "opq/new"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("flattened:\n got %v\nwant %v", got, want)
	}
}

// TestFlattenMatchesOverlay checks Flatten against the kernel: an overlay
// of the same layer trees shows the same files.
func TestFlattenMatchesOverlay(t *testing.T) {
	needRoot(t)
	for name, ls := range map[string][][]byte{
		"whiteouts":         whiteoutLayers(t),
		"dir-becomes-file":  {layer(t, "a/", "a/b", "c"), layer(t, "a")},
		"file-becomes-dir":  {layer(t, "a", "c"), layer(t, "a/", "a/b")},
		"opaque-root-child": {layer(t, "x/", "x/y/", "x/y/z"), layer(t, "x/", "x/.wh..wh..opq", "x/y/", "x/y/w")},
	} {
		t.Run(name, func(t *testing.T) {
			lowers, err := extractAll(t, ls...)
			if err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(t.TempDir(), "flat")
			if err := Flatten(context.Background(), lowers, dest); err != nil {
				t.Fatal(err)
			}
			mnt := t.TempDir()
			lowerdir := strings.Join(lowers, ":")
			if len(lowers) == 1 {
				t.Skip("overlayfs needs two lower directories without an upper")
			}
			if err := unix.Mount("overlay", mnt, "overlay", unix.MS_RDONLY, "lowerdir="+lowerdir); err != nil {
				t.Skipf("overlayfs: %v", err)
			}
			defer unix.Unmount(mnt, unix.MNT_DETACH)
			if got, want := listTree(t, dest), listTree(t, mnt); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Fatalf("flattened %v\noverlay   %v", got, want)
			}
		})
	}
}

func TestFlattenKeepsHardLinks(t *testing.T) {
	needRoot(t)
	lowers, err := extractAll(t, layer(t, "a/", "a/f", "a/g=>a/f"))
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "flat")
	if err := Flatten(context.Background(), lowers, dest); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Stat(filepath.Join(dest, "a/f"))
	g, _ := os.Stat(filepath.Join(dest, "a/g"))
	if f == nil || g == nil || !os.SameFile(f, g) {
		t.Fatal("a/f and a/g are not one file")
	}
}

func TestExtractLayerRefuses(t *testing.T) {
	for _, l := range [][]byte{
		layer(t, "../evil"),
		layer(t, "a/../../evil"),
		layer(t, "/etc/passwd"),
		layer(t, "etc/.wh.."),
		layer(t, "etc/.wh."),
		layer(t, "../.wh.etc"),
		layer(t, "../.wh..wh..opq"),
		layer(t, "/.wh.etc"),
		layer(t, "x=>../../etc/shadow"),
		layer(t, "x=>etc/not-in-this-layer"),
		layer(t, "up->../../.."),
	} {
		dir := filepath.Join(t.TempDir(), "tree")
		_, err := ExtractLayer(context.Background(), bytes.NewReader(l), dir, NewBudget(1<<30))
		if !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("want ErrInvalid, got %v", err)
		}
	}
}

func TestExtractLayerSizeLimit(t *testing.T) {
	big := layer(t, strings.Repeat("x", 10000))
	_, err := ExtractLayer(context.Background(), bytes.NewReader(big), filepath.Join(t.TempDir(), "tree"), NewBudget(4096))
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "larger than the limit") {
		t.Fatalf("got %v", err)
	}
	// The layers of one image share their budget.
	b := NewBudget(16 << 10)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 4000})
	tw.Write(bytes.Repeat([]byte("y"), 4000))
	tw.Close()
	small := buf.Bytes()
	for i := range 3 {
		n, err := ExtractLayer(context.Background(), bytes.NewReader(small), filepath.Join(t.TempDir(), "tree"), b)
		if i < 2 && (err != nil || n != int64(len(small))) {
			t.Fatalf("layer %d: %d bytes, %v", i, n, err)
		}
		if i == 2 && !errors.Is(err, errdefs.ErrInvalid) {
			t.Fatalf("the third layer passed the shared limit: %v", err)
		}
	}
}

func TestReadFileThroughLayers(t *testing.T) {
	needRoot(t)
	lowers, err := extractAll(t,
		layer(t, "etc/", "etc/passwd", "etc/group", "x/", "x/file"),
		layer(t, "etc/.wh.group", "x/", "x/.wh..wh..opq"),
		layer(t, "etc/", "etc/passwd"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if data, ok, err := ReadFile(lowers, "etc/passwd", 1<<20); err != nil || !ok || string(data) != "etc/passwd" {
		t.Errorf("etc/passwd: %q %v %v", data, ok, err)
	}
	for _, gone := range []string{"etc/group", "x/file", "nope"} {
		if _, ok, err := ReadFile(lowers, gone, 1<<20); ok || err != nil {
			t.Errorf("%s: found (%v), want hidden", gone, err)
		}
	}
}

// TestFlattenRepeatedLayerIsTopmost backs the store's dropping of a layer
// listed twice from an overlay (which refuses a lower directory twice):
// with its upper occurrence alone, the image is the same.
func TestFlattenRepeatedLayerIsTopmost(t *testing.T) {
	needRoot(t)
	base := layer(t, "d/", "d/base", "x/", "x/under", "gone")
	l := layer(t, "d/", "d/l", "x/", "x/.wh..wh..opq", "x/l", ".wh.gone", "f")
	m := layer(t, "d/", "d/m", ".wh.f", "x/", "x/m", "d/.wh.l")
	lowers, err := extractAll(t, base, l, m, l)
	if err != nil {
		t.Fatal(err)
	}
	all := filepath.Join(t.TempDir(), "all")
	if err := Flatten(context.Background(), lowers, all); err != nil {
		t.Fatal(err)
	}
	// lowers is top first: l, m, l, base; keep the first l only.
	top := filepath.Join(t.TempDir(), "top")
	if err := Flatten(context.Background(), []string{lowers[0], lowers[1], lowers[3]}, top); err != nil {
		t.Fatal(err)
	}
	if a, b := listTree(t, all), listTree(t, top); strings.Join(a, " ") != strings.Join(b, " ") {
		t.Fatalf("with the repeat %v\nwithout it     %v", a, b)
	}
}
