package stage0

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
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
// brief probe of the prepared pod's lock for an owner.
func TestLockPreparedBesideLockProbes(t *testing.T) {
	p, podsDir := preparedPod(t, "", stage1Image(t))
	if err := p.ToPrepared(); err != nil {
		t.Fatal(err)
	}
	p.Close()
	path := filepath.Join(podsDir, string(dirPrepared), p.UUID)
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
					// Back to back, as list, status and gc run from a
					// loop: each probe holds the lock for a moment.
					lockedByOther(path)
					time.Sleep(200 * time.Microsecond)
				}
			}
		}()
	}
	defer func() { close(stop); probes.Wait() }()
	for i := range 200 {
		seen, err := Get(podsDir, p.UUID)
		if err != nil {
			t.Fatal(err)
		}
		if err := seen.LockPrepared(); err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		seen.Close()
	}
}
