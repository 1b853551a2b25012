package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage0"
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

// runOrbit runs orbit's command tree in this process with ctx.
func runOrbit(ctx context.Context, t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	g := &globalOptions{Stdout: &out, Stderr: &out}
	root := newRootCommand(g)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

// TestStatusWaitsEndWithoutLeaks: `status --wait-ready=D` and `--wait=D`
// on a pod that never gets there fail after D saying so, and `status
// --wait` without a limit ends when its context does (Ctrl-C); none leaves
// a goroutine behind, as the wait run in a goroutine of its own did.
func TestStatusWaitsEndWithoutLeaks(t *testing.T) {
	dir := t.TempDir()
	p, err := stage0.NewPod(dir + "/pods") // held in prepare: never ready
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	before := runtime.NumGoroutine()

	start := time.Now()
	_, err = runOrbit(t.Context(), t, "--dir", dir, "status", "--wait-ready=200ms", p.UUID)
	if err == nil || !strings.Contains(err.Error(), "the pod did not start within 200ms") || !errors.Is(err, errdefs.ErrBusy) {
		t.Fatalf("status --wait-ready=200ms on a pod being prepared = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the wait took %s", d)
	}
	checkNoGoroutinesLeft(t, before)

	if err := p.ToRun(); err != nil { // running, its lock held: not exited
		t.Fatal(err)
	}
	_, err = runOrbit(t.Context(), t, "--dir", dir, "status", "--wait=200ms", p.UUID)
	if err == nil || !strings.Contains(err.Error(), "the pod did not exit within 200ms") {
		t.Fatalf("status --wait=200ms on a running pod = %v", err)
	}
	checkNoGoroutinesLeft(t, before)

	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(200*time.Millisecond, cancel)
	start = time.Now()
	if _, err := runOrbit(ctx, t, "--dir", dir, "status", "--wait", p.UUID); !errors.Is(err, context.Canceled) {
		t.Fatalf("status --wait, interrupted = %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the interrupted wait took %s", d)
	}
	checkNoGoroutinesLeft(t, before)

	p.Close() // stage1 exits
	out, err := runOrbit(t.Context(), t, "--dir", dir, "status", "--wait-ready", "--wait=10s", p.UUID)
	if err != nil || !strings.Contains(out, "state=exited") {
		t.Fatalf("status --wait on an exited pod = %v: %s", err, out)
	}
}

// TestInterrupts: SIGTERM cancels the root context instead of killing
// orbit, says which signal came, and stops a command that would exec
// stage1; without a signal the command may go on.
func TestInterrupts(t *testing.T) {
	// The signal package starts its one relaying goroutine on first use,
	// for good: not a leak.
	warm := make(chan os.Signal, 1)
	signal.Notify(warm, syscall.SIGUSR2)
	signal.Stop(warm)
	before := runtime.NumGoroutine()
	ctx, in := watchInterrupts(t.Context())
	if err := unix.Kill(unix.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM did not cancel the context")
	}
	if got := in.received(); got != syscall.SIGTERM {
		t.Fatalf("received %v, want SIGTERM", got)
	}
	if err := in.handOver(); !errors.Is(err, context.Canceled) {
		t.Fatalf("handOver after SIGTERM = %v", err)
	}
	checkNoGoroutinesLeft(t, before)

	ctx, in = watchInterrupts(t.Context())
	if err := in.handOver(); err != nil || in.received() != nil {
		t.Fatalf("handOver without a signal = %v (received %v)", err, in.received())
	}
	<-ctx.Done()
	checkNoGoroutinesLeft(t, before)
}
