package tests

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// aciBuildManifest writes an image manifest file and returns its path.
func aciBuildManifest(t *testing.T, dir string, m map[string]any) string {
	t.Helper()
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "manifest.json")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// aciBuildEntries reads a tar (gzip-compressed when gz) and returns its
// entries by name, and the manifest's data.
func aciBuildEntries(t *testing.T, path string, gz bool) (map[string]*tar.Header, []byte) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var r io.Reader = f
	if gz {
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("%s is not gzip: %v", path, err)
		}
		r = zr
	}
	tr := tar.NewReader(r)
	entries := map[string]*tar.Header{}
	var manifest []byte
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		entries[name] = hdr
		if name == "manifest" {
			manifest, _ = io.ReadAll(tr)
		}
	}
	return entries, manifest
}

// wantOneLineFailure checks that orbit failed with a single diagnostic line.
func wantOneLineFailure(t *testing.T, r result, fragment string) {
	t.Helper()
	if r.Code == 0 {
		t.Fatalf("orbit succeeded, want a failure: %s", r)
	}
	lines := strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "orbit: ") || !strings.Contains(lines[0], fragment) {
		t.Fatalf("want one line mentioning %q: %s", fragment, r)
	}
}

func TestACIBuild(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	work := t.TempDir()
	rootfs := busyboxRootfs(t)
	manifest := aciBuildManifest(t, work, imageManifest("example.com/built", "/bin/sh", "-c", "echo built"))
	out := filepath.Join(work, "built.aci")

	e.mustRun("image", "build", rootfs, manifest, out)
	entries, data := aciBuildEntries(t, out, true)
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil || m["name"] != "example.com/built" {
		t.Fatalf("manifest %q: %v", data, err)
	}
	for _, name := range []string{"rootfs", "rootfs/bin/busybox", "rootfs/etc/passwd", "rootfs/home/user"} {
		if entries[name] == nil {
			t.Errorf("no %s in the image", name)
		}
	}
	if h := entries["rootfs/bin/sh"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "busybox" {
		t.Errorf("rootfs/bin/sh: %+v", h)
	}
	for name, h := range entries {
		if h.Uname != "" || h.Gname != "" {
			t.Errorf("%s carries owner names %q:%q", name, h.Uname, h.Gname)
		}
	}

	// The same input gives the same bytes.
	again := filepath.Join(work, "again.aci")
	e.mustRun("image", "build", rootfs, manifest, again)
	a, _ := os.ReadFile(out)
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) {
		t.Error("two builds of the same tree differ")
	}

	// An existing output is kept unless --overwrite.
	wantOneLineFailure(t, e.run("image", "build", rootfs, manifest, out), "already exists")
	if now, _ := os.ReadFile(out); !bytes.Equal(now, a) {
		t.Fatal("a refused build changed the output")
	}
	e.mustRun("image", "build", "--overwrite", "--compression=none", rootfs, manifest, out)
	plain, _ := os.ReadFile(out)
	if len(plain) < 262 || string(plain[257:262]) != "ustar" {
		t.Fatal("--compression=none did not write a plain tar")
	}
	if entries, _ := aciBuildEntries(t, out, false); entries["rootfs/bin/busybox"] == nil {
		t.Error("plain image lacks rootfs/bin/busybox")
	}

	leftovers, _ := filepath.Glob(filepath.Join(work, ".*tmp*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestACIBuildRefusesBadInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	work := t.TempDir()
	rootfs := busyboxRootfs(t)
	good := aciBuildManifest(t, work, imageManifest("example.com/good"))
	badDir := t.TempDir()
	bad := imageManifest("Not A Valid Name!")
	badManifest := aciBuildManifest(t, badDir, bad)
	notJSON := filepath.Join(work, "not.json")
	if err := os.WriteFile(notJSON, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(work, "out.aci")

	for _, tc := range []struct {
		name     string
		args     []string
		fragment string
	}{
		{"bad name", []string{rootfs, badManifest, out}, badManifest},
		{"not json", []string{rootfs, notJSON, out}, "not.json"},
		{"missing manifest", []string{rootfs, filepath.Join(work, "absent.json"), out}, "absent.json"},
		{"missing rootfs", []string{filepath.Join(work, "absent"), good, out}, "absent"},
		{"rootfs is a file", []string{good, good, out}, "not a directory"},
		{"bad compression", []string{"--compression=zstd", rootfs, good, out}, "compression"},
		{"output inside rootfs", []string{rootfs, good, filepath.Join(rootfs, "self.aci")}, "rootfs"},
		{"wrong arguments", []string{rootfs, good}, "arg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.run(append([]string{"image", "build"}, tc.args...)...)
			wantOneLineFailure(t, r, tc.fragment)
			if _, err := os.Stat(out); err == nil {
				t.Fatal("a failed build left an output")
			}
		})
	}
}
