package flock

import (
	"bufio"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// holdEnv makes the test binary a helper process that locks the path it
// names exclusively, says "locked" and holds the lock until stdin closes.
const holdEnv = "FLOCK_TEST_HOLD"

func TestMain(m *testing.M) {
	if path := os.Getenv(holdEnv); path != "" {
		l, err := Open(path)
		if err == nil {
			err = l.TryLock(Exclusive)
		}
		if err != nil {
			os.Stdout.WriteString(err.Error() + "\n")
			os.Exit(1)
		}
		os.Stdout.WriteString("locked\n")
		io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// holdInChild starts a process that holds path's lock exclusively; the
// returned func makes it release the lock and end.
func holdInChild(t *testing.T, path string) (release func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), holdEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line != "locked\n" {
		stdin.Close()
		cmd.Wait()
		t.Fatalf("helper did not lock: %q", line)
	}
	done := false
	release = func() {
		if !done {
			done = true
			stdin.Close()
			cmd.Wait()
		}
	}
	t.Cleanup(release)
	return release
}

func mustCreate(t *testing.T, path string) *Lock {
	t.Helper()
	l, err := Create(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestTwoOpensContendInOneProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l")
	a, b := mustCreate(t, path), mustCreate(t, path)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("created %v, %v; want mode 0600", fi, err)
	}

	if err := a.TryLock(Shared); err != nil {
		t.Fatal(err)
	}
	if err := b.TryLock(Shared); err != nil {
		t.Fatalf("two shared holders: %v", err)
	}
	if err := b.TryLock(Exclusive); !errors.Is(err, errdefs.ErrBusy) {
		t.Fatalf("exclusive beside a shared holder: %v, want ErrBusy", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.TryLock(Exclusive); err != nil {
		t.Fatalf("exclusive after the other closed: %v", err)
	}
	c := mustCreate(t, path)
	if err := c.TryLock(Shared); !errors.Is(err, errdefs.ErrBusy) {
		t.Fatalf("shared beside an exclusive holder: %v, want ErrBusy", err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := a.TryLock(Shared); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("locking a closed lock: %v", err)
	}
	var none *Lock
	if err := none.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestTwoProcessesContend(t *testing.T) {
	dir := t.TempDir() // directories lock like files
	release := holdInChild(t, dir)

	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.TryLock(Shared); !errors.Is(err, errdefs.ErrBusy) {
		t.Fatalf("TryLock against another process: %v, want ErrBusy", err)
	}
	got := make(chan error, 1)
	go func() { got <- l.Lock(context.Background(), Exclusive) }()
	select {
	case err := <-got:
		t.Fatalf("Lock returned while another process held the lock: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Lock still waiting after the other process let go")
	}
}

func TestLockEndsWithItsContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l")
	holder := mustCreate(t, path)
	if err := holder.TryLock(Exclusive); err != nil {
		t.Fatal(err)
	}
	waiter := mustCreate(t, path)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := waiter.Lock(ctx, Shared)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock past its deadline: %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Lock took %v to notice its deadline", d)
	}

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if err := waiter.Lock(ctx, Shared); !errors.Is(err, context.Canceled) {
		t.Fatalf("Lock with a cancelled context: %v", err)
	}

	// With a live context it gets the lock as soon as the holder lets go.
	ctx, cancel = context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	closed := make(chan struct{})
	go func() {
		time.Sleep(20 * time.Millisecond)
		holder.Close()
		close(closed)
	}()
	if err := waiter.Lock(ctx, Exclusive); err != nil {
		t.Fatal(err)
	}
	<-closed
}

func TestAcquireStartsAgainOnARemovedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l")
	first, err := TryAcquire(path, Exclusive)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := TryAcquire(path, Shared); !errors.Is(err, errdefs.ErrBusy) {
		t.Fatalf("Acquire without waiting on a held lock: %v, want ErrBusy", err)
	}

	// A waiter blocks on the file; the holder removes it and lets go: the
	// waiter must not end up holding the removed file.
	got := make(chan *Lock, 1)
	go func() {
		l, err := Acquire(context.Background(), path, Shared)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	time.Sleep(50 * time.Millisecond)
	if err := first.Remove(); err != nil {
		t.Fatal(err)
	}
	if err := first.Remove(); err != nil {
		t.Fatalf("removing again: %v", err)
	}
	first.Close()
	l := <-got
	if l == nil {
		t.FailNow()
	}
	defer l.Close()
	if ok, err := l.Linked(); !ok || err != nil {
		t.Fatalf("Acquire returned a lock on a removed file (%v)", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("the lock file was not created again: %v", err)
	}
}

func TestLinked(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "l")
	l := mustCreate(t, path)
	if ok, err := l.Linked(); !ok || err != nil {
		t.Fatalf("Linked on a fresh file: %v, %v", ok, err)
	}
	if err := os.Rename(filepath.Join(dir, "l"), filepath.Join(dir, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if ok, err := l.Linked(); ok || err != nil {
		t.Fatalf("Linked on a replaced file: %v, %v", ok, err)
	}
	os.Remove(path)
	if ok, err := l.Linked(); ok || err != nil {
		t.Fatalf("Linked on a removed file: %v, %v", ok, err)
	}
}

// A lock handed to a child through an exec stays held while the child
// lives, even once the parent has closed its own descriptor.
func TestInheritableFdHandsTheLockToAChild(t *testing.T) {
	path := filepath.Join(t.TempDir(), "l")
	l := mustCreate(t, path)
	if err := l.TryLock(Exclusive); err != nil {
		t.Fatal(err)
	}
	fd, err := l.InheritableFd()
	if err != nil {
		t.Fatal(err)
	}
	// The child proves it has the descriptor by waiting on it being open.
	child := exec.Command("/bin/sh", "-c", `[ -e /proc/self/fd/`+strconv.Itoa(fd)+` ] && echo have && read x`)
	stdin, _ := child.StdinPipe()
	stdout, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); child.Wait() }()
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "have\n" {
		t.Fatalf("the child did not inherit descriptor %d: %q", fd, line)
	}
	l.Close()

	other := mustCreate(t, path)
	if err := other.TryLock(Shared); !errors.Is(err, errdefs.ErrBusy) {
		t.Fatalf("lock free while the child holds it: %v", err)
	}
	stdin.Close()
	child.Wait()
	if err := other.TryLock(Shared); err != nil {
		t.Fatalf("lock still held after the child ended: %v", err)
	}
}

func TestHeldByOther(t *testing.T) {
	dir := t.TempDir()
	if held, err := HeldByOther(dir); err != nil || held {
		t.Fatalf("unlocked: %v, %v", held, err)
	}
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := l.TryLock(Shared); err != nil {
		t.Fatal(err)
	}
	if held, err := HeldByOther(dir); err != nil || held {
		t.Fatalf("held shared: %v, %v; want not exclusively held", held, err)
	}
	if err := l.TryLock(Exclusive); err != nil {
		t.Fatal(err)
	}
	if held, err := HeldByOther(dir); err != nil || !held {
		t.Fatalf("held exclusively: %v, %v", held, err)
	}
	if _, err := HeldByOther(dir + "/absent"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("absent path: %v, want ErrNotExist", err)
	}
}
