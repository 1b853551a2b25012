package aci

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func testRootfs(t *testing.T) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	writeTree(t, root, map[string]string{
		"bin/busybox":   "busybox",
		"etc/passwd":    "root:x:0:0::/:/bin/sh\n",
		"etc/empty.d/":  "",
		"usr/lib/z.so":  "z",
		"usr/lib/a.so":  "a",
		"home/user/.rc": "rc",
	})
	if err := os.Symlink("busybox", filepath.Join(root, "bin/sh")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(root, "bin/busybox"), filepath.Join(root, "bin/ls")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "bin/busybox"), os.ModeSetuid|0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestWriteRoundTrip(t *testing.T) {
	root := testRootfs(t)
	im := mustManifest(t, manifestJSON(t, "example.com/written", nil))
	for _, c := range []Compression{CompressionNone, CompressionGzip} {
		t.Run(c.String(), func(t *testing.T) {
			var buf bytes.Buffer
			if err := Write(context.Background(), &buf, im, root, WriteOptions{Compression: c}); err != nil {
				t.Fatal(err)
			}
			rc, err := Decompress(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			plain, err := io.ReadAll(rc)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Check(bytes.NewReader(plain))
			if err != nil {
				t.Fatal(err)
			}
			if got.Name != "example.com/written" {
				t.Errorf("name %q", got.Name)
			}

			var names []string
			tr := tar.NewReader(bytes.NewReader(plain))
			for {
				hdr, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if hdr.Uname != "" || hdr.Gname != "" {
					t.Errorf("%s has owner names %q:%q", hdr.Name, hdr.Uname, hdr.Gname)
				}
				names = append(names, hdr.Name)
				if hdr.Name == "rootfs/bin/ls" && (hdr.Typeflag != tar.TypeLink || hdr.Linkname != "rootfs/bin/busybox") {
					t.Errorf("bin/ls: type %q link %q", hdr.Typeflag, hdr.Linkname)
				}
			}
			want := []string{"manifest", "rootfs/", "rootfs/bin/", "rootfs/bin/busybox", "rootfs/bin/ls", "rootfs/bin/sh",
				"rootfs/etc/", "rootfs/etc/empty.d/", "rootfs/etc/passwd", "rootfs/fifo", "rootfs/home/", "rootfs/home/user/",
				"rootfs/home/user/.rc", "rootfs/usr/", "rootfs/usr/lib/", "rootfs/usr/lib/a.so", "rootfs/usr/lib/z.so"}
			if len(names) != len(want) {
				t.Fatalf("entries %q\nwant %q", names, want)
			}
			for i := range want {
				if names[i] != want[i] {
					t.Fatalf("entry %d is %q, want %q\nall: %q", i, names[i], want[i], names)
				}
			}

			dest := t.TempDir()
			if err := Extract(bytes.NewReader(plain), dest, nil); err != nil {
				t.Fatal(err)
			}
			if fi := mustExist(t, filepath.Join(dest, "rootfs/bin/busybox")); fi.Mode() != os.ModeSetuid|0o755 {
				t.Errorf("busybox mode %v", fi.Mode())
			}
			if readFile(t, filepath.Join(dest, "rootfs/etc/passwd")) != "root:x:0:0::/:/bin/sh\n" {
				t.Error("passwd differs")
			}
		})
	}
}

func TestWriteIsDeterministic(t *testing.T) {
	im := mustManifest(t, manifestJSON(t, "example.com/same", nil))
	fixed := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	var outs [][]byte
	for i := 0; i < 2; i++ {
		root := testRootfs(t) // made anew, so times differ
		time.Sleep(10 * time.Millisecond)
		var buf bytes.Buffer
		if err := Write(context.Background(), &buf, im, root, WriteOptions{Compression: CompressionGzip, ModTime: &fixed}); err != nil {
			t.Fatal(err)
		}
		outs = append(outs, buf.Bytes())
	}
	if !bytes.Equal(outs[0], outs[1]) {
		t.Fatal("the same files and manifest gave different bytes")
	}

	// Without ModTime, writing the same tree twice still gives the same bytes.
	root := testRootfs(t)
	var a, b bytes.Buffer
	if err := Write(context.Background(), &a, im, root, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := Write(context.Background(), &b, im, root, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("writing one tree twice gave different bytes")
	}
}

func TestWriteFile(t *testing.T) {
	root := testRootfs(t)
	im := mustManifest(t, manifestJSON(t, "example.com/file", nil))
	out := filepath.Join(t.TempDir(), "out.aci")
	if err := WriteFile(context.Background(), out, im, root, WriteOptions{Compression: CompressionGzip}, false); err != nil {
		t.Fatal(err)
	}
	first := readFile(t, out)
	err := WriteFile(context.Background(), out, im, root, WriteOptions{Compression: CompressionNone}, false)
	if !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Fatalf("second write without overwrite: %v", err)
	}
	if readFile(t, out) != first {
		t.Fatal("refused write changed the file")
	}
	if err := WriteFile(context.Background(), out, im, root, WriteOptions{Compression: CompressionNone}, true); err != nil {
		t.Fatal(err)
	}
	if readFile(t, out) == first {
		t.Fatal("overwrite left the old file")
	}
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	err = WriteFile(context.Background(), filepath.Join(root, "inside.aci"), im, root, WriteOptions{}, false)
	wantInvalid(t, err, "inside")
}

func TestWriteRefusesSockets(t *testing.T) {
	root := t.TempDir()
	if err := unix.Mknod(filepath.Join(root, "sock"), unix.S_IFSOCK|0o600, 0); err != nil {
		t.Skip(err)
	}
	im := mustManifest(t, manifestJSON(t, "example.com/sock", nil))
	wantInvalid(t, Write(context.Background(), io.Discard, im, root, WriteOptions{}), "sock")
}

func TestWriteSkipsSocketsWhenAsked(t *testing.T) {
	root := t.TempDir()
	if err := unix.Mknod(filepath.Join(root, "sock"), unix.S_IFSOCK|0o600, 0); err != nil {
		t.Skip(err)
	}
	if err := os.WriteFile(filepath.Join(root, "kept"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	im := mustManifest(t, manifestJSON(t, "example.com/sock", nil))
	var buf bytes.Buffer
	if err := Write(context.Background(), &buf, im, root, WriteOptions{SkipSockets: true}); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	var names []string
	for {
		hdr, err := tr.Next()
		if err != nil {
			break
		}
		names = append(names, hdr.Name)
	}
	if strings.Contains(strings.Join(names, " "), "sock") || !strings.Contains(strings.Join(names, " "), "rootfs/kept") {
		t.Errorf("entries: %q", names)
	}
}

func TestWriteBoundsSizeAndStopsWithContext(t *testing.T) {
	root := t.TempDir()
	f, err := os.Create(filepath.Join(root, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 40); err != nil {
		t.Skip(err)
	}
	f.Close()
	im := mustManifest(t, manifestJSON(t, "example.com/sparse", nil))
	err = Write(context.Background(), io.Discard, im, root, WriteOptions{MaxSize: 1 << 20})
	if !errors.Is(err, ErrTooLarge) || !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("a 1TiB sparse file within 1MiB: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Write(ctx, io.Discard, im, root, WriteOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("a cancelled write: %v", err)
	}
}

func TestWriteRefusesLinkOutOfRoot(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "a"), 0o755)
	os.Symlink("../../etc/shadow", filepath.Join(root, "a", "out"))
	os.Symlink("/../../etc/shadow", filepath.Join(root, "abs"))
	os.Symlink("../b", filepath.Join(root, "a", "in"))
	im := mustManifest(t, manifestJSON(t, "example.com/links", nil))
	wantInvalid(t, Write(context.Background(), io.Discard, im, root, WriteOptions{}), "rootfs/a/out")
	os.Remove(filepath.Join(root, "a", "out"))
	if err := Write(context.Background(), io.Discard, im, root, WriteOptions{}); err != nil {
		t.Errorf("absolute and inner links: %v", err)
	}
}
