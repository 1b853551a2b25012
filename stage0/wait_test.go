package stage0

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// checkNoGoroutinesLeft fails if, after a moment to wind down, more
// goroutines run than before.
func checkNoGoroutinesLeft(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines left running, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWaitEndsOnContext: waiting for a running pod (its lock held, as
// stage1 holds it) ends as soon as the context does, leaving nothing
// running; once the pod exits, Wait returns.
func TestWaitEndsOnContext(t *testing.T) {
	dir := t.TempDir()
	p, err := NewPod(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.ToRun(); err != nil {
		t.Fatal(err)
	}
	waiter, err := Get(dir, p.UUID)
	if err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := waiter.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait on a running pod past the deadline = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Wait outlived its context by %s", d)
	}
	checkNoGoroutinesLeft(t, before)

	exited := make(chan struct{})
	time.AfterFunc(50*time.Millisecond, func() { p.Close(); close(exited) }) // stage1 exits
	err = waiter.Wait(t.Context())
	<-exited
	if err != nil {
		t.Fatal(err)
	}
	if waiter.State != Exited {
		t.Fatalf("state after Wait = %s, want exited", waiter.State)
	}
}

// TestWaitReady: a pod being prepared is not ready, and the wait for it
// ends with the context; a running pod that reported its PID is ready, and
// so is one that has exited.
func TestWaitReady(t *testing.T) {
	dir := t.TempDir()
	p, err := NewPod(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	waiter, err := Get(dir, p.UUID)
	if err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := waiter.WaitReady(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitReady on a pod being prepared = %v", err)
	}
	checkNoGoroutinesLeft(t, before)

	if err := p.ToRun(); err != nil {
		t.Fatal(err)
	}
	// Running, and then it reports its PID.
	time.AfterFunc(100*time.Millisecond, func() {
		os.WriteFile(p.File("pid"), []byte(strconv.Itoa(os.Getpid())), 0o644)
	})
	ctx, cancel = context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := waiter.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if waiter.State != Running {
		t.Fatalf("ready in state %s, want running", waiter.State)
	}

	p.Close()
	exited, err := Get(dir, p.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if err := exited.WaitReady(ctx); err != nil || exited.State != Exited {
		t.Fatalf("WaitReady on an exited pod = %v in state %s", err, exited.State)
	}
}
