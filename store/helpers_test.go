package store

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// testImage describes an ACI to build for a test.
type testImage struct {
	name    string
	version string            // the version label, if any
	labels  map[string]string // more labels
	files   map[string]string // rootfs-relative path -> content
	deps    []string          // names of images it depends on
}

// build returns the image as an uncompressed ACI tar.
func (ti testImage) build(t testing.TB) []byte {
	t.Helper()
	labels := []map[string]string{}
	if ti.version != "" {
		labels = append(labels, map[string]string{"name": "version", "value": ti.version})
	}
	keys := make([]string, 0, len(ti.labels))
	for k := range ti.labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		labels = append(labels, map[string]string{"name": k, "value": ti.labels[k]})
	}
	m := map[string]any{
		"acKind":    "ImageManifest",
		"acVersion": "0.8.11",
		"name":      ti.name,
		"labels":    labels,
	}
	var deps []map[string]any
	for _, d := range ti.deps {
		deps = append(deps, map[string]any{"imageName": d})
	}
	if deps != nil {
		m["dependencies"] = deps
	}
	mj, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(1500000000, 0)
	add := func(h *tar.Header, data []byte) {
		h.ModTime = mtime
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	add(&tar.Header{Name: "manifest", Mode: 0o644, Size: int64(len(mj)), Typeflag: tar.TypeReg}, mj)
	add(&tar.Header{Name: "rootfs/", Mode: 0o755, Typeflag: tar.TypeDir}, nil)
	paths := make([]string, 0, len(ti.files))
	for p := range ti.files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	dirs := map[string]bool{}
	for _, p := range paths {
		parts := strings.Split(p, "/")
		for i := 1; i < len(parts); i++ {
			d := strings.Join(parts[:i], "/")
			if !dirs[d] {
				dirs[d] = true
				add(&tar.Header{Name: "rootfs/" + d + "/", Mode: 0o755, Typeflag: tar.TypeDir}, nil)
			}
		}
		c := ti.files[p]
		add(&tar.Header{Name: "rootfs/" + p, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg}, []byte(c))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func idOf(b []byte) string {
	sum := sha512.Sum512(b)
	return idPrefix + hex.EncodeToString(sum[:])
}

func newTestStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(filepath.Join(t.TempDir(), "cas"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeClock is a store clock that moves only when a test advances it.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// newClockedStore is a test store whose clock starts at the real time
// (so that files' modification times are comparable with it) and then
// moves only with clock.Advance.
func newClockedStore(t testing.TB) (*Store, *fakeClock) {
	t.Helper()
	clock := &fakeClock{now: time.Now()}
	return newTestStore(t).WithClock(clock.Now), clock
}

func mustImport(t testing.TB, s *Store, aci []byte, opts ImportOptions) Image {
	t.Helper()
	img, err := s.Import(bytes.NewReader(aci), opts)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	return img
}

// dirNames lists the names in dir (none if it does not exist).
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// blobIDs lists the image IDs that have a blob on disk.
func blobIDs(t testing.TB, s *Store) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for _, d := range dirNames(t, s.blobsDir()) {
		for _, f := range dirNames(t, filepath.Join(s.blobsDir(), d)) {
			ids[idPrefix+f] = true
		}
	}
	return ids
}

// checkConsistent fails unless index and blobs agree exactly, every blob
// hashes to its ID, and every complete tree holds what its chain says.
func checkConsistent(t testing.TB, s *Store) {
	t.Helper()
	images, err := s.List()
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	blobs := blobIDs(t, s)
	for _, img := range images {
		if !blobs[img.ID] {
			t.Errorf("index entry %s has no blob", img.ID)
		}
		if err := s.Verify(img.ID); err != nil {
			t.Errorf("verify: %v", err)
		}
		delete(blobs, img.ID)
	}
	for id := range blobs {
		t.Errorf("blob %s has no index entry", id)
	}
	for _, name := range dirNames(t, s.treesDir()) {
		if !validTreeID(name) {
			t.Errorf("unexpected entry in trees: %s", name)
			continue
		}
		chain, err := readMarker(s.treePath(name))
		if err != nil {
			t.Errorf("tree %s is incomplete: %v", name, err)
			continue
		}
		if got := TreeID(chain); got != name {
			t.Errorf("tree %s lists a chain whose ID is %s", name, got)
		}
	}
}
