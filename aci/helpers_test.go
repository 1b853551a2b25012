package aci

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// testTime is the modification time of every test entry.
var testTime = time.Date(2020, 5, 4, 3, 2, 1, 0, time.UTC)

// ent is one tar entry to build: a header and, for files, its data.
type ent struct {
	hdr  tar.Header
	data string
}

func file(name, data string) ent {
	return ent{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data)), ModTime: testTime}, data: data}
}

func dir(name string) ent {
	return ent{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: testTime}}
}

func symlink(name, target string) ent {
	return ent{hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777, ModTime: testTime}}
}

func hardlink(name, target string) ent {
	return ent{hdr: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target, ModTime: testTime}}
}

// manifestJSON returns a valid image manifest named name with extra
// fields merged in.
func manifestJSON(t testing.TB, name string, extra map[string]any) string {
	t.Helper()
	m := map[string]any{
		"acKind":    "ImageManifest",
		"acVersion": "0.8.11",
		"name":      name,
		"labels":    []map[string]string{{"name": "os", "value": "linux"}},
	}
	for k, v := range extra {
		m[k] = v
	}
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func manifestEnt(t testing.TB, name string) ent {
	return file("manifest", manifestJSON(t, name, nil))
}

// buildTar writes the entries as a tar.
func buildTar(t testing.TB, entries ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := e.hdr
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatalf("header %q: %v", hdr.Name, err)
		}
		if _, err := tw.Write([]byte(e.data)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// simpleImage is a small valid image.
func simpleImage(t testing.TB) []byte {
	return buildTar(t,
		manifestEnt(t, "example.com/simple"),
		dir("rootfs"),
		dir("rootfs/bin"),
		file("rootfs/bin/hello", "#!/bin/sh\necho hello\n"),
		symlink("rootfs/bin/hi", "hello"),
		symlink("rootfs/abs", "/bin/hello"),
		hardlink("rootfs/bin/hello2", "rootfs/bin/hello"),
		dir("rootfs/etc"),
		file("rootfs/etc/hostname", "box\n"),
	)
}

// wantInvalid fails unless err is ErrInvalid and mentions every fragment.
func wantInvalid(t testing.TB, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want ErrInvalid")
	}
	if !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("error %q is not ErrInvalid", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q spans several lines", err)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not mention %q", err, f)
		}
	}
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func mustExist(t testing.TB, p string) os.FileInfo {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

func mustNotExist(t testing.TB, p string) {
	t.Helper()
	if _, err := os.Lstat(p); err == nil {
		t.Fatalf("%s exists", p)
	} else if !os.IsNotExist(err) {
		t.Fatal(err)
	}
}

func mustManifest(t testing.TB, data string) *schema.ImageManifest {
	t.Helper()
	var im schema.ImageManifest
	if err := json.Unmarshal([]byte(data), &im); err != nil {
		t.Fatal(err)
	}
	return &im
}

// writeTree makes files below root from "path" -> content; a path ending
// in "/" is a directory.
func writeTree(t testing.TB, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
