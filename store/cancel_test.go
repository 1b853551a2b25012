package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/orbit-containers/orbit/internal/flock"
)

// promptly is how soon a cancelled wait must end (the lock waits
// themselves are tested in internal/flock).
const promptly = time.Second

// TestTreeWaitEndsOnCancel: Tree waiting for a tree another process is
// rendering (its lock held exclusively) gives up with the context's error.
func TestTreeWaitEndsOnCancel(t *testing.T) {
	s := newTestStore(t)
	img := mustImport(t, s, testImage{name: "example.com/a"}.build(t), ImportOptions{})
	renderer, err := flock.TryAcquire(s.treeLockPath(TreeID([]string{img.ID})), flock.Exclusive)
	if err != nil {
		t.Fatal(err)
	}
	defer renderer.Close()

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := s.Tree(ctx, img.ID); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Tree while another renders, past the deadline = %v", err)
	}
	if d := time.Since(start); d > promptly {
		t.Fatalf("the wait took %s", d)
	}
	renderer.Close()
	tr, err := s.Tree(t.Context(), img.ID)
	if err != nil {
		t.Fatal(err)
	}
	tr.Release()
}

// TestRemoveWaitEndsOnCancel: a removal waiting for its turn behind another
// gives up with the context's error.
func TestRemoveWaitEndsOnCancel(t *testing.T) {
	s := newTestStore(t)
	img := mustImport(t, s, testImage{name: "example.com/a"}.build(t), ImportOptions{})
	turn, err := flock.TryAcquire(filepath.Join(s.leasesDir(), removalLock), flock.Exclusive)
	if err != nil {
		t.Fatal(err)
	}
	defer turn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := s.Remove(ctx, img.ID, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Remove behind another removal, past the deadline = %v", err)
	}
	if _, err := s.Get(img.ID); err != nil {
		t.Fatalf("the image went anyway: %v", err)
	}
}

func TestGCStopsWhenCancelled(t *testing.T) {
	s := newTestStore(t)
	img := mustImport(t, s, testImage{name: "example.com/a"}.build(t), ImportOptions{})
	tr, err := s.Tree(t.Context(), img.ID)
	if err != nil {
		t.Fatal(err)
	}
	tr.Release()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	rep, err := s.GC(ctx, nil)
	if !errors.Is(err, context.Canceled) || len(rep.TreesRemoved) != 0 {
		t.Fatalf("GC with a done context = %+v, %v", rep, err)
	}
	if removed, err := s.ExpireImages(ctx, 0, nil); !errors.Is(err, context.Canceled) || len(removed) != 0 {
		t.Fatalf("ExpireImages with a done context = %v, %v", removed, err)
	}
}
