package store

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1": 1, "512B": 512, "4K": 4096, "64MiB": 64 << 20, "16G": 16 << 30, "2TiB": 2 << 40} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "1.5G", "lots", "10X", "99999999999999999999", "9000000000T", "G"} {
		if _, err := ParseSize(in); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("ParseSize(%q) = %v, want ErrInvalid", in, err)
		}
	}
	for _, n := range []int64{1, 1024, 3 << 20, 16 << 30, 1000} {
		if got, err := ParseSize(FormatSize(n)); err != nil || got != n {
			t.Errorf("ParseSize(FormatSize(%d)) = %d, %v", n, got, err)
		}
	}
}

func TestImportRefusesImageOverLimit(t *testing.T) {
	s := newTestStore(t)
	aci := testImage{name: "example.com/big", files: map[string]string{"zeroes": strings.Repeat("\x00", 1<<20)}}.build(t)
	small := s.WithLimits(Limits{MaxImageSize: 512 << 10})
	_, err := small.Import(bytes.NewReader(gzipBytes(t, aci)), ImportOptions{})
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "limit of 512KiB") {
		t.Fatalf("Import over the limit: %v", err)
	}
	if names := dirNames(t, s.tmpDir()); len(names) != 0 {
		t.Errorf("temp files left: %v", names)
	}
	checkConsistent(t, s)
	if imgs, _ := s.List(); len(imgs) != 0 {
		t.Errorf("images stored: %v", imgs)
	}
	// Under the default limit it is fine, but a tree of it is held to the
	// store view's limit too.
	img := mustImport(t, s, aci, ImportOptions{})
	if _, err := small.Tree(t.Context(), img.ID); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("Tree over the limit: %v", err)
	}
	if _, err := s.Tree(t.Context(), img.ID); err != nil {
		t.Errorf("Tree: %v", err)
	}
}
