package store

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/orbit-containers/orbit/internal/flock"
)

// image gc removes kept downloads nobody holds once untouched for a
// minute; ExpirePartials (orbit gc) only those too old to resume.
func TestPartialsCollected(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "cas"))
	if err != nil {
		t.Fatal(err)
	}
	dir := s.PartialDir()
	os.MkdirAll(dir, 0o700)
	write := func(name string, age time.Duration) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-age)
		os.Chtimes(p, old, old)
		return p
	}
	exists := func(name string) bool { _, err := os.Lstat(filepath.Join(dir, name)); return err == nil }

	write("fresh.aci", 0)
	write("old.aci", 2*time.Hour)
	write("old.json", 2*time.Hour)
	write("ancient.aci", PartialMaxAge+time.Hour)
	write("ancient.json", PartialMaxAge+time.Hour)
	held := write("held.aci", PartialMaxAge+time.Hour)
	l, err := flock.TryAcquire(held, flock.Exclusive)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	write("orphan.json", 2*time.Hour)

	removed, err := ExpirePartials(s.Dir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if exists("ancient.aci") || exists("ancient.json") || !exists("old.aci") || !exists("held.aci") || len(removed) != 1 {
		t.Fatalf("ExpirePartials removed %v", removed)
	}
	var rep GCReport
	if err := s.gcPartials(&rep); err != nil {
		t.Fatal(err)
	}
	if exists("old.aci") || exists("old.json") || exists("orphan.json") || !exists("fresh.aci") || !exists("held.aci") {
		t.Fatalf("gc removed %v", rep.TempRemoved)
	}
}
