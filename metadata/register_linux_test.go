package metadata

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func TestWatchProcess(t *testing.T) {
	cmd := exec.Command("sleep", "0.2")
	if err := cmd.Start(); err != nil {
		t.Skip("no sleep:", err)
	}
	gone := make(chan struct{})
	stop, err := watchProcess(cmd.Process.Pid, func() { close(gone) })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	go cmd.Wait()
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the end of the process was not noticed")
	}
	// A stopped watch never fires.
	cmd = exec.Command("sleep", "0.1")
	cmd.Start()
	stop, err = watchProcess(cmd.Process.Pid, func() { t.Error("stopped watch fired") })
	if err != nil {
		t.Fatal(err)
	}
	stop()
	cmd.Wait()
	time.Sleep(100 * time.Millisecond)
}

func TestRegistrationSocket(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "mds", "registration.sock")
	c := NewClient(socket)
	if _, err := c.Ping(context.Background()); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Ping without a service = %v, want not found", err)
	}
	l, err := ListenRegistration(socket)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(socket); st.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v", st.Mode())
	}
	if st, _ := os.Stat(filepath.Dir(socket)); st.Mode().Perm() != 0o700 {
		t.Errorf("socket directory mode %v", st.Mode())
	}
	if _, err := ListenRegistration(socket); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("second listener: %v, want already exists", err)
	}
	s, _ := New(4242, nil)
	srv := s.RegistrationServer()
	go srv.Serve(l)
	defer srv.Close()
	ctx := context.Background()
	if port, err := c.Ping(ctx); err != nil || port != 4242 {
		t.Fatalf("Ping = %d, %v", port, err)
	}
	reg, err := c.Register(ctx, registration(uuidA, `[]`))
	if err != nil || reg.Port != 4242 || s.lookup(reg.Token) == nil {
		t.Fatalf("Register = %+v, %v", reg, err)
	}
	if _, err := c.Register(ctx, &Registration{UUID: "bad"}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("bad registration: %v", err)
	}
	if err := c.Unregister(ctx, uuidA); err != nil {
		t.Fatal(err)
	}
	if err := c.Unregister(ctx, uuidA); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("second Unregister = %v, want not found", err)
	}
	// A stale socket, nothing listening, is replaced.
	srv.Close()
	if l, err := ListenRegistration(socket); err != nil {
		t.Errorf("over a stale socket: %v", err)
	} else {
		l.Close()
	}
}
