package tests

import (
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ctxstoreStartSleeper runs a fly pod that sleeps, and returns its UUID
// once it runs.
func ctxstoreStartSleeper(t *testing.T, e *env) string {
	t.Helper()
	aci := busyboxACI(t, "example.com/sleeper", "/bin/sh", "-c", "sleep 30")
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	cmd := e.command("run", "--insecure-options=image", "--stage1-name=fly", "--uuid-file-save="+uuidFile, aci)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return waitRunning(t, e, uuidFile)
}

// ctxstoreWaitEnd waits for a started command and returns how it ended.
func ctxstoreWaitEnd(t *testing.T, cmd *exec.Cmd, within time.Duration) syscall.WaitStatus {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return cmd.ProcessState.Sys().(syscall.WaitStatus)
	case <-time.After(within):
		cmd.Process.Kill()
		<-done
		t.Fatalf("orbit %v did not end within %s", cmd.Args[1:], within)
		return 0
	}
}

// TestCtxstoreSignalEndsStatusWait: SIGINT or SIGTERM to `orbit status
// --wait` of a running pod ends the wait at once, and orbit ends by the
// signal as it did when nothing caught it; the pod runs on.
func TestCtxstoreSignalEndsStatusWait(t *testing.T) {
	e := newEnv(t)
	uuid := ctxstoreStartSleeper(t, e)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		cmd := e.command("status", "--wait", uuid)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond) // into the wait
		cmd.Process.Signal(sig)
		ws := ctxstoreWaitEnd(t, cmd, 5*time.Second)
		if !ws.Signaled() || ws.Signal() != sig {
			t.Fatalf("status --wait after %s: %v, want ended by the signal", sig, ws)
		}
	}
	if r := e.run("status", uuid); !strings.Contains(r.Stdout, "state=running") {
		t.Fatalf("the pod did not run on after its waiter was interrupted: %s", r)
	}
}

// TestCtxstoreWaitReadyLimit: `status --wait-ready=D` on a pod that is only
// prepared fails after D, in one line, instead of waiting on.
func TestCtxstoreWaitReadyLimit(t *testing.T) {
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/sleeper", "/bin/sh", "-c", "sleep 30")
	uuid := strings.TrimSpace(e.mustRun("prepare", "--insecure-options=image", "--stage1-name=fly", aci).Stdout)
	start := time.Now()
	r := e.run("status", "--wait-ready=300ms", uuid)
	if r.Code != 254 || strings.TrimSpace(r.Stderr) != "orbit: the pod did not start within 300ms: in use" {
		t.Fatalf("status --wait-ready=300ms on a prepared pod: %s", r)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the limited wait took %s", d)
	}
}

// TestCtxstoreNewerStoreFormatRefused: a store written by a newer orbit
// (its index records a format this one does not know) is refused in one
// line that says what to do, and left as it was.
func TestCtxstoreNewerStoreFormatRefused(t *testing.T) {
	e := newEnv(t)
	e.mustRun("image", "list")
	index := filepath.Join(e.Dir, "cas", "index.db")
	setFormat := func(v string) {
		t.Helper()
		db, err := bolt.Open(index, 0o644, &bolt.Options{Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		err = db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("meta"))
			if err != nil {
				return err
			}
			return b.Put([]byte("format"), []byte(v))
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	setFormat("99")
	r := e.run("image", "list")
	want := regexp.MustCompile(`^orbit: store at ` + regexp.QuoteMeta(filepath.Join(e.Dir, "cas")) + ` has format 99, this orbit knows up to [1-9][0-9]*; upgrade orbit: invalid$`)
	if r.Code != 254 || !want.MatchString(strings.TrimSpace(r.Stderr)) {
		t.Fatalf("image list on a newer store: %s\nwant stderr matching %s", r, want)
	}
	setFormat("1")
	e.mustRun("image", "list")
}
