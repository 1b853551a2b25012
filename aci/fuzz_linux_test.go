package aci

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// fuzzSeeds are valid and hostile images to start fuzzing from.
func fuzzSeeds(t testing.TB) [][]byte {
	man := manifestEnt(t, "example.com/fuzz")
	return [][]byte{
		simpleImage(t),
		buildTar(t, man, dir("rootfs"), file("rootfs/../etc/passwd", "x")),
		buildTar(t, man, file("/etc/passwd", "x")),
		buildTar(t, man, hardlink("rootfs/shadow", "/etc/shadow")),
		buildTar(t, man, symlink("rootfs/up", "../../outside"), file("rootfs/up/pwned", "x")),
		buildTar(t, man, symlink("rootfs/abs", "/"), file("rootfs/abs/manifest", "x")),
		buildTar(t, man, symlink("rootfs/x", "../outside"), dir("rootfs/x"), file("rootfs/x/f", "f")),
		buildTar(t, man, symlink("rootfs/l1", "l2"), symlink("rootfs/l2", "l1"), file("rootfs/l1/x", "x")),
		buildTar(t, man, file("rootfs/d/f", "f"), file("rootfs/d", "file")),
		buildTar(t, man, ent{hdr: tar.Header{Name: "rootfs/fifo", Typeflag: tar.TypeFifo, Mode: 0o600}}),
		buildTar(t, dir("rootfs"), file("rootfs/a", "no manifest")),
		buildTar(t, file("manifest", `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"BAD"}`)),
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		im, err := Check(bytes.NewReader(data))
		if err == nil && im == nil {
			t.Fatal("Check accepted an image without returning its manifest")
		}
		if err != nil && bytes.ContainsRune([]byte(err.Error()), '\n') {
			t.Fatalf("multi-line error %q", err)
		}
	})
}

// FuzzExtract extracts arbitrary tars, validated and not, and checks that
// nothing appeared or changed beside the destination.
func FuzzExtract(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		base := t.TempDir()
		outside := filepath.Join(base, "outside")
		if err := os.MkdirAll(outside, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(outside, "victim"), []byte("untouched"), 0o644); err != nil {
			t.Fatal(err)
		}
		checkedErr := Extract(bytes.NewReader(data), filepath.Join(base, "checked"), nil)
		_ = extract(bytes.NewReader(data), filepath.Join(base, "raw"), extractOptions{route: keepAll})
		_ = extract(bytes.NewReader(data), filepath.Join(base, "walk"), extractOptions{route: keepAll, noOpenat2: true})

		if checkedErr == nil {
			if _, err := Check(bytes.NewReader(data)); err != nil {
				t.Fatalf("Extract accepted what Check refuses: %v", err)
			}
		}
		entries, err := os.ReadDir(base)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			switch e.Name() {
			case "outside", "checked", "raw", "walk":
			default:
				t.Fatalf("extraction created %s beside its destination", e.Name())
			}
		}
		got, err := os.ReadDir(outside)
		if err != nil || len(got) != 1 {
			t.Fatalf("outside changed: %v %v", got, err)
		}
		if data, err := os.ReadFile(filepath.Join(outside, "victim")); err != nil || string(data) != "untouched" {
			t.Fatalf("victim changed: %q %v", data, err)
		}
	})
}
