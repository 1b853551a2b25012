package store

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func TestImportGetOpenBlob(t *testing.T) {
	s := newTestStore(t)
	raw := testImage{name: "example.com/hello", version: "1.0", files: map[string]string{"etc/hello": "hi"}}.build(t)
	img := mustImport(t, s, gzipBytes(t, raw), ImportOptions{})

	if want := idOf(raw); img.ID != want {
		t.Fatalf("ID = %s, want the hash of the uncompressed tar %s", img.ID, want)
	}
	if img.Name != "example.com/hello" || img.Size != int64(len(raw)) || img.Manifest == nil || img.Latest {
		t.Fatalf("unexpected image %+v", img)
	}
	if v, _ := img.Labels.Get("version"); v != "1.0" {
		t.Fatalf("labels = %v", img.Labels)
	}
	for _, ref := range []string{img.ID, img.ID[:len(idPrefix)+4], strings.ToUpper(img.ID[:20])} {
		got, err := s.Get(ref)
		if err != nil || got.ID != img.ID {
			t.Fatalf("Get(%q) = %v, %v", ref, got.ID, err)
		}
	}
	rc, err := s.OpenBlob(img.ID)
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(stored, raw) {
		t.Fatal("the stored blob is not the uncompressed ACI")
	}
	fi, err := os.Stat(s.blobPath(img.ID))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o444 {
		t.Fatalf("blob mode %v, want read-only", fi.Mode())
	}
	if names := dirNames(t, s.tmpDir()); len(names) != 0 {
		t.Fatalf("temp files left: %v", names)
	}
	m, err := s.Manifest(img.ID)
	if err != nil || m.Name != "example.com/hello" {
		t.Fatalf("Manifest = %v, %v", m, err)
	}
	if err := s.Verify(img.ID); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, s)
}

func TestImportRejectsBadInput(t *testing.T) {
	s := newTestStore(t)
	noManifest := testImage{name: "example.com/x"}.build(t)
	// Drop the manifest entry: the first header block and its one data block.
	noManifest = noManifest[1024:]
	good := testImage{name: "example.com/x", files: map[string]string{"f": "f"}}.build(t)
	truncated := gzipBytes(t, good)
	truncated = truncated[:len(truncated)/2]
	for name, input := range map[string][]byte{
		"garbage":        []byte("this is not a tar archive at all, not even close......"),
		"no manifest":    noManifest,
		"empty":          nil,
		"escaping path":  escapingACI(t),
		"truncated gzip": truncated,
	} {
		_, err := s.Import(bytes.NewReader(input), ImportOptions{})
		if !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	if names := dirNames(t, s.tmpDir()); len(names) != 0 {
		t.Fatalf("temp files left: %v", names)
	}
	if ids := blobIDs(t, s); len(ids) != 0 {
		t.Fatalf("blobs stored from bad input: %v", ids)
	}
	if images, _ := s.List(); len(images) != 0 {
		t.Fatalf("index holds %d images", len(images))
	}
}

func TestReimportRefreshesEntry(t *testing.T) {
	s, clock := newClockedStore(t)
	raw := testImage{name: "example.com/hello"}.build(t)
	first := mustImport(t, s, raw, ImportOptions{Latest: true})
	clock.Advance(time.Second)
	second := mustImport(t, s, gzipBytes(t, raw), ImportOptions{})
	if second.ID != first.ID {
		t.Fatalf("IDs differ: %s %s", first.ID, second.ID)
	}
	if !second.ImportedAt.After(first.ImportedAt) {
		t.Fatalf("import time not refreshed: %v then %v", first.ImportedAt, second.ImportedAt)
	}
	if !second.Latest {
		t.Fatal("re-import dropped the latest mark")
	}
	if !second.LastUsed.Equal(first.LastUsed) {
		t.Fatal("re-import changed the last-use time")
	}
	images, err := s.List()
	if err != nil || len(images) != 1 {
		t.Fatalf("List = %d images, %v", len(images), err)
	}
	checkConsistent(t, s)
}

func TestGetErrors(t *testing.T) {
	s := newTestStore(t)
	for _, ref := range []string{"sha512-", "sha512-a", "sha512-xyz0", "hello", "sha256-00", "sha512-" + strings.Repeat("0", 129)} {
		if _, err := s.Get(ref); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("Get(%q) = %v, want ErrInvalid", ref, err)
		}
	}
	if _, err := s.Get("sha512-0000"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get on empty store = %v, want ErrNotFound", err)
	}
	// Import images until two share their first two hex digits.
	seen := map[string]string{}
	for i := 0; ; i++ {
		img := mustImport(t, s, testImage{name: "example.com/many", files: map[string]string{"n": strings.Repeat("x", i)}}.build(t), ImportOptions{})
		p := img.ID[:len(idPrefix)+2]
		if other, ok := seen[p]; ok {
			_, err := s.Get(p)
			if !errors.Is(err, errdefs.ErrAmbiguous) {
				t.Fatalf("Get(%s) = %v, want ErrAmbiguous", p, err)
			}
			for _, id := range []string{img.ID, other} {
				if got, err := s.Get(id[:len(idPrefix)+40]); err != nil || got.ID != id {
					t.Fatalf("longer prefix: %v %v", got.ID, err)
				}
			}
			break
		}
		seen[p] = img.ID
	}
	if _, err := s.OpenBlob("../../etc/passwd"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("OpenBlob with a path = %v", err)
	}
}

func TestFindByName(t *testing.T) {
	s, clock := newClockedStore(t)
	v1 := mustImport(t, s, testImage{name: "example.com/app", version: "1.0", labels: map[string]string{"os": "linux"}}.build(t), ImportOptions{Latest: true})
	clock.Advance(time.Second)
	v2 := mustImport(t, s, testImage{name: "example.com/app", version: "2.0", labels: map[string]string{"os": "linux"}}.build(t), ImportOptions{})
	mustImport(t, s, testImage{name: "example.com/other", version: "1.0"}.build(t), ImportOptions{})

	cases := []struct {
		ref  string
		want string
	}{
		{"example.com/app", v2.ID},
		{"example.com/app:1.0", v1.ID},
		{"example.com/app:2.0,os=linux", v2.ID},
		{"example.com/app:latest", v1.ID}, // the one fetched as latest
		{"example.com/app,os=linux", v2.ID},
	}
	for _, c := range cases {
		img, err := s.Resolve(c.ref)
		if err != nil || img.ID != c.want {
			t.Errorf("Resolve(%q) = %s, %v; want %s", c.ref, img.ID, err, c.want)
		}
	}
	for _, ref := range []string{"example.com/app:3.0", "example.com/app,os=freebsd", "example.com/nope"} {
		if _, err := s.Resolve(ref); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("Resolve(%q) = %v, want ErrNotFound", ref, err)
		}
	}
	if _, err := s.Resolve("example.com/app:1:2"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("malformed name: %v", err)
	}
	// With no image marked latest, "latest" means the newest.
	if img, err := s.Resolve("example.com/other:latest"); err != nil || img.Name != "example.com/other" {
		t.Errorf("latest without a latest mark: %v %v", img.ID, err)
	}
	id, err := s.ResolveName("example.com/app", types.Labels{{Name: "version", Value: "1.0"}})
	if err != nil || id != v1.ID {
		t.Errorf("ResolveName = %s, %v", id, err)
	}
}

func TestParseAndFormatName(t *testing.T) {
	name, labels, err := ParseName("example.com/hello:1.0,os=linux")
	if err != nil {
		t.Fatal(err)
	}
	if name != "example.com/hello" {
		t.Fatalf("name = %s", name)
	}
	if v, _ := labels.Get("version"); v != "1.0" {
		t.Fatalf("labels = %v", labels)
	}
	if got := FormatName(name, labels); got != "example.com/hello:1.0,os=linux" {
		t.Fatalf("FormatName = %s", got)
	}
	if _, _, err := ParseName("Not A Name"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("bad name: %v", err)
	}
}

func TestTouch(t *testing.T) {
	s, clock := newClockedStore(t)
	img := mustImport(t, s, testImage{name: "example.com/a"}.build(t), ImportOptions{})
	clock.Advance(time.Second)
	index, err := os.ReadFile(s.indexPath())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Touch(img.ID); err != nil {
		t.Fatal(err)
	}
	got, _ := s.Get(img.ID)
	if !got.LastUsed.After(img.LastUsed) {
		t.Fatal("Touch did not move the last-use time")
	}
	if all, err := s.List(); err != nil || len(all) != 1 || !all[0].LastUsed.Equal(got.LastUsed) {
		t.Fatalf("List after Touch = %+v, %v; want last use %v", all, err, got.LastUsed)
	}
	// The hot path of a run writes no index transaction.
	if after, err := os.ReadFile(s.indexPath()); err != nil || !bytes.Equal(after, index) {
		t.Fatalf("Touch rewrote the index (%v)", err)
	}
	if err := s.Touch(idOf([]byte("nothing"))); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Touch of a missing image = %v", err)
	}
}

func TestRemotes(t *testing.T) {
	s := newTestStore(t)
	img := mustImport(t, s, testImage{name: "example.com/a"}.build(t), ImportOptions{})
	url := "https://example.com/a.aci"
	if _, err := s.GetRemote(url); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("GetRemote before Put = %v", err)
	}
	if err := s.PutRemote(Remote{URL: url, ImageID: idOf([]byte("x"))}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("PutRemote of an unknown image = %v", err)
	}
	now := time.Now().Truncate(time.Second)
	want := Remote{URL: url, ImageID: img.ID, ETag: `"abc"`, MaxAge: time.Hour, DownloadedAt: now}
	if err := s.PutRemote(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetRemote(url)
	if err != nil || got.ImageID != want.ImageID || got.ETag != want.ETag || got.MaxAge != want.MaxAge || !got.DownloadedAt.Equal(now) {
		t.Fatalf("GetRemote = %+v, %v", got, err)
	}
	if err := s.Remove(t.Context(), img.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRemote(url); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("remote outlived its image: %v", err)
	}
}

func TestOpenIsIdempotentAndCreatesLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cas")
	for range 2 {
		if _, err := Open(dir); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"blobs/sha512", "trees", "locks", "tmp", "index.db"} {
		if _, err := os.Stat(filepath.Join(dir, d)); err != nil {
			t.Fatal(err)
		}
	}
}

// escapingACI is an ACI with an entry that climbs out of the rootfs.
func escapingACI(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	m := []byte(`{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/evil"}`)
	tw.WriteHeader(&tar.Header{Name: "manifest", Mode: 0o644, Size: int64(len(m)), Typeflag: tar.TypeReg})
	tw.Write(m)
	tw.WriteHeader(&tar.Header{Name: "rootfs/../../evil", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.Close()
	return buf.Bytes()
}

func TestOpenRestrictsStoreToRoot(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cas")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("store dir mode %v, %v; want 0700 (trees hold setuid binaries)", fi.Mode(), err)
	}
}
