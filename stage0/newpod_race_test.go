package stage0

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/flock"
)

// Commands that only look at pods (list, status, gc) probe each pod's lock
// with a shared lock of their own for a moment. A pod being created must
// not fail because such a probe happened to look at its new directory.
func TestNewPodBesideLockProbes(t *testing.T) {
	dir := t.TempDir()
	if err := ensurePodsDirs(dir); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var probes sync.WaitGroup
	for range 2 {
		probes.Add(1)
		go func() {
			defer probes.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				// What load does for every pod it finds, here on the new
				// pods only, as fast as it can.
				ents, _ := os.ReadDir(filepath.Join(dir, string(dirEmbryo)))
				for _, e := range ents {
					lockedByOther(filepath.Join(dir, string(dirEmbryo), e.Name()))
				}
			}
		}()
	}
	for i := range 800 {
		p, err := NewPod(dir)
		if err != nil {
			close(stop)
			probes.Wait()
			t.Fatalf("pod %d: %v", i, err)
		}
		p.Close()
		os.RemoveAll(p.Path())
	}
	close(stop)
	probes.Wait()
}

// run-prepared's LockPrepared, likewise, must not take another command's
// brief probe of the prepared pod's lock for an owner; a real owner keeps
// it refused.
func TestLockPreparedBesideLockProbes(t *testing.T) {
	p, podsDir := preparedPod(t, "", stage1Image(t))
	if err := p.ToPrepared(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	path := filepath.Join(podsDir, string(dirPrepared), p.UUID)
	hold := func(mode flock.Mode) *flock.Lock {
		l, err := flock.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.TryLock(mode); err != nil {
			t.Fatal(err)
		}
		return l
	}

	// A probe: list's shared lock, let go of a little later.
	probe := hold(flock.Shared)
	time.AfterFunc(probeGrace/5, func() { probe.Close() })
	seen, err := Get(podsDir, p.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if err := seen.LockPrepared(); err != nil {
		t.Fatalf("run-prepared beside a probe: %v", err)
	}
	seen.Close()

	// An owner: another run-prepared's exclusive lock, kept.
	owner := hold(flock.Exclusive)
	defer owner.Close()
	seen, err = Get(podsDir, p.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if err := seen.LockPrepared(); !errors.Is(err, errdefs.ErrBusy) {
		t.Fatalf("run-prepared beside an owner: %v, want busy", err)
	}
}
