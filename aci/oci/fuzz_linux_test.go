package oci

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzExtractLayer feeds arbitrary layers to the extraction: it must not
// panic, and whatever it does stays inside its destination.
func FuzzExtractLayer(f *testing.F) {
	for _, seed := range [][]byte{
		layer(f, "etc/", "etc/passwd", "etc/.wh.group", "x/", "x/.wh..wh..opq", "l->../x", "h=>etc/passwd"),
		layer(f, "../evil", "/abs", "a/../../b"),
		layer(f, ".wh..", "d/.wh..wh..opq"),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		dest := filepath.Join(parent, "tree")
		ExtractLayer(context.Background(), bytes.NewReader(data), dest, NewBudget(1<<20))
		entries, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "tree" {
				t.Fatalf("extraction wrote %s beside its destination", e.Name())
			}
		}
	})
}
