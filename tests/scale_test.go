package tests

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRenderTrustsStoreVerifyOnDemand: a blob changed on disk after it
// entered the store renders as stored (the store verified it on import
// and only root can write it), and `image render --verify` hashes it again
// and refuses it.
func TestRenderTrustsStoreVerifyOnDemand(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "payload"), []byte("original"), 0o644); err != nil {
		t.Fatal(err)
	}
	aciPath := writeACI(t, filepath.Join(dir, "img.aci"), rootfs, imageManifest("example.com/scale-render"))
	id := strings.TrimSpace(e.mustRun("fetch", "--insecure-options=image", aciPath).Stdout)
	e.mustRun("image", "render", "--verify", id, filepath.Join(dir, "verified"))
	assertFile(t, filepath.Join(dir, "verified", "rootfs", "payload"), "original")

	blobs, _ := filepath.Glob(filepath.Join(e.Dir, "cas", "blobs", "sha512", "*", "*"))
	if len(blobs) != 1 {
		t.Fatalf("%d blobs in the store, want 1", len(blobs))
	}
	blob := blobs[0]
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blob, bytes.Replace(data, []byte("original"), []byte("tamperd!"), 1), 0o444); err != nil {
		t.Fatal(err)
	}
	e.mustRun("image", "render", id, filepath.Join(dir, "trusted"))
	assertFile(t, filepath.Join(dir, "trusted", "rootfs", "payload"), "tamperd!")

	r := e.run("image", "render", "--verify", id, filepath.Join(dir, "refused"))
	if r.Code == 0 || !strings.Contains(r.Stderr, "hashes to") {
		t.Fatalf("render --verify of a changed blob: %s; want a refusal naming the hash", r)
	}
	if _, err := os.Lstat(filepath.Join(dir, "refused")); err == nil {
		t.Error("a refused render left its directory behind")
	}
}
