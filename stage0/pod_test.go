package stage0

import (
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func TestPodLifecycle(t *testing.T) {
	dir := t.TempDir()
	p, err := NewPod(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Get(dir, p.UUID[:8])
	if err != nil {
		t.Fatal(err)
	}
	if got.State != Preparing {
		t.Fatalf("state while locked in prepare = %s, want preparing", got.State)
	}
	if err := p.ToPrepared(); err != nil {
		t.Fatal(err)
	}
	if got, _ := Get(dir, p.UUID); got.State != Prepared {
		t.Fatalf("state = %s, want prepared", got.State)
	}
	// Two commands race to run the prepared pod: exactly one wins.
	a, _ := Get(dir, p.UUID)
	b, _ := Get(dir, p.UUID)
	if err := a.LockPrepared(); err != nil {
		t.Fatal(err)
	}
	if err := b.LockPrepared(); !errors.Is(err, errdefs.ErrBusy) {
		t.Fatalf("second lock: %v, want busy", err)
	}
	if err := a.ToRun(); err != nil {
		t.Fatal(err)
	}
	if got, _ := Get(dir, p.UUID); got.State != Running {
		t.Fatalf("state = %s, want running", got.State)
	}
	a.Close() // stage1 exits
	got, _ = Get(dir, p.UUID)
	if got.State != Exited {
		t.Fatalf("state after the lock holder went = %s, want exited", got.State)
	}
	if err := got.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := GC(t.Context(), dir, GCConfig{GracePeriod: 0}); err != nil {
		t.Fatal(err)
	}
	if _, err := Get(dir, p.UUID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("after gc: %v, want not found", err)
	}
}

func TestAbortedPrepareIsCollected(t *testing.T) {
	dir := t.TempDir()
	p, err := NewPod(dir)
	if err != nil {
		t.Fatal(err)
	}
	p.Close() // the preparing process died
	got, _ := Get(dir, p.UUID)
	if got.State != AbortedPrepare {
		t.Fatalf("state = %s, want aborted prepare", got.State)
	}
	if err := GC(t.Context(), dir, GCConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(got.Path()); !os.IsNotExist(err) {
		t.Fatalf("aborted pod still there: %v", err)
	}
}

func TestRunningPodSurvivesGC(t *testing.T) {
	dir := t.TempDir()
	p, err := NewPod(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ToRun(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := GC(t.Context(), dir, GCConfig{}); err != nil {
		t.Fatal(err)
	}
	if got, err := Get(dir, p.UUID); err != nil || got.State != Running {
		t.Fatalf("running pod after gc: %v %v", got, err)
	}
	if err := Remove(mustGet(t, dir, p.UUID), GCConfig{}); !errors.Is(err, errdefs.ErrBusy) {
		t.Fatalf("rm of a running pod: %v, want busy", err)
	}
}

func TestAmbiguousPrefix(t *testing.T) {
	dir := t.TempDir()
	var pods []*Pod
	for i := 0; i < 40; i++ {
		p, err := NewPod(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		pods = append(pods, p)
	}
	// 40 random UUIDs share a first hex digit with near certainty.
	seen := map[byte]int{}
	for _, p := range pods {
		seen[p.UUID[0]]++
	}
	for c, n := range seen {
		if n > 1 {
			if _, err := Get(dir, string(c)); !errors.Is(err, errdefs.ErrAmbiguous) {
				t.Fatalf("prefix %q: %v, want ambiguous", c, err)
			}
			return
		}
	}
}

func TestConcurrentNewPodsAndGC(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := 0; i < 20; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			p, err := NewPod(dir)
			if err != nil {
				errs <- err
				return
			}
			if err := p.ToRun(); err != nil {
				errs <- err
			}
			p.Close()
		}()
		go func() {
			defer wg.Done()
			if err := GC(t.Context(), dir, GCConfig{}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if err := GC(t.Context(), dir, GCConfig{}); err != nil {
		t.Fatal(err)
	}
	left, _ := List(dir)
	if len(left) != 0 {
		t.Fatalf("%d pods left after gc", len(left))
	}
}

func mustGet(t *testing.T, dir, id string) *Pod {
	t.Helper()
	p, err := Get(dir, id)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
