package store

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

// promptly is how soon a cancelled wait must end: far less than a poll's
// longest sleep plus scheduling slack would allow a blocking wait to hide.
const promptly = time.Second

func TestLockWaitEndsOnCancel(t *testing.T) {
	s := newTestStore(t)
	path := s.treeLockPath(TreeID([]string{"x"}))
	held, err := lockFile(path, true, true)
	if err != nil {
		t.Fatal(err)
	}
	defer held.unlock()

	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	l, err := lockWait(ctx, path, false)
	if !errors.Is(err, context.Canceled) || l != nil {
		t.Fatalf("lockWait on a held lock, cancelled = %v, %v", l, err)
	}
	if d := time.Since(start); d > promptly {
		t.Fatalf("the cancelled wait took %s", d)
	}

	// An already cancelled context does not even try.
	if _, err := lockWait(ctx, s.treeLockPath(TreeID([]string{"y"})), true); !errors.Is(err, context.Canceled) {
		t.Fatalf("lockWait with a done context = %v", err)
	}

	// Once the holder lets go, a waiter gets the lock.
	released := make(chan struct{})
	time.AfterFunc(50*time.Millisecond, func() { held.unlock(); close(released) })
	ctx, cancel = context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	l, err = lockWait(ctx, path, true)
	<-released
	if err != nil {
		t.Fatalf("lockWait after the holder let go = %v", err)
	}
	l.unlock()
}

// TestTreeWaitEndsOnCancel: Tree waiting for a tree another process is
// rendering (its lock held exclusively) gives up with the context's error.
func TestTreeWaitEndsOnCancel(t *testing.T) {
	s := newTestStore(t)
	img := mustImport(t, s, testImage{name: "example.com/a"}.build(t), ImportOptions{})
	renderer, err := lockFile(s.treeLockPath(TreeID([]string{img.ID})), true, true)
	if err != nil {
		t.Fatal(err)
	}
	defer renderer.unlock()

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := s.Tree(ctx, img.ID); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Tree while another renders, past the deadline = %v", err)
	}
	if d := time.Since(start); d > promptly {
		t.Fatalf("the wait took %s", d)
	}
	renderer.unlock()
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
	turn, err := lockFile(filepath.Join(s.leasesDir(), removalLock), true, true)
	if err != nil {
		t.Fatal(err)
	}
	defer turn.unlock()
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
