package initramfs

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func TestCollectKeepsLinkedAndRecent(t *testing.T) {
	dir := t.TempDir()
	podDir := t.TempDir()
	old := time.Now().Add(-48 * time.Hour)
	write := func(name string, when time.Time) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, when, when); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("initramfs-old.cpio", old)
	linked := write("initramfs-linked.cpio", old)
	write("initramfs-new.cpio", time.Now())
	write("accel-old", old)
	write("accel-new", time.Now())
	write(".initramfs-x.cpio.tmp-123", old)
	write("unrelated", old)
	if err := Link(linked, filepath.Join(podDir, "initrd")); err != nil {
		t.Fatal(err)
	}
	got, err := Collect(dir, time.Now().Add(-time.Hour), "accel-")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	want := []string{".initramfs-x.cpio.tmp-123", "accel-old", "initramfs-old.cpio"}
	if !slices.Equal(got, want) {
		t.Fatalf("removed %q, want %q", got, want)
	}
	for _, n := range []string{"initramfs-linked.cpio", "initramfs-new.cpio", "accel-new", "unrelated"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	// Once the pod's link is gone, the archive is the cache's alone.
	os.Remove(filepath.Join(podDir, "initrd"))
	if got, _ := Collect(dir, time.Now().Add(-time.Hour)); !slices.Equal(got, []string{"initramfs-linked.cpio"}) {
		t.Errorf("removed %q, want the unlinked archive", got)
	}
	if got, err := Collect(filepath.Join(dir, "missing"), time.Now()); err != nil || got != nil {
		t.Errorf("a missing cache: %q, %v", got, err)
	}
}

func TestLinkGoneIsNotFound(t *testing.T) {
	dir := t.TempDir()
	err := Link(filepath.Join(dir, "gone"), filepath.Join(dir, "dst"))
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("want ErrNotFound, got %v", err)
	}
}
