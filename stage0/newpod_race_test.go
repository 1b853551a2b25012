package stage0

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
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
