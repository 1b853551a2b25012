package supervisor

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orbit-containers/orbit/stage1/contract"
)

// mutableFixture runs a mutable pod in the background.
type mutableFixture struct {
	*fixture
	sock, specs string
	cancel      context.CancelFunc
	done        chan int
}

func newMutable(t *testing.T) *mutableFixture {
	f := newFixture(t)
	m := &mutableFixture{fixture: f, sock: filepath.Join(t.TempDir(), "control", "s.sock"), specs: t.TempDir(), done: make(chan int, 1)}
	cfg := f.config()
	cfg.Mutable, cfg.ControlSocket, cfg.AppSpecDir = true, m.sock, m.specs
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		code, err := Run(ctx, cfg)
		if err != nil {
			t.Error(err)
		}
		m.done <- code
	}()
	t.Cleanup(func() { cancel(); <-m.done })
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := m.call(contract.OpState, ""); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the control socket did not come up")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return m
}

func (m *mutableFixture) call(op contract.ControlOp, app string, files ...*os.File) (*contract.ControlResponse, error) {
	req := contract.ControlRequest{Op: op, App: app}
	for range files {
		req.Files = append(req.Files, "stdout")
	}
	return contract.CallControl(m.sock, req, files, 10*time.Second)
}

func (m *mutableFixture) add(name, script string, files ...*os.File) {
	m.t.Helper()
	b, _ := json.Marshal(m.app(name, script))
	if err := os.WriteFile(filepath.Join(m.specs, name+".json"), b, 0o644); err != nil {
		m.t.Fatal(err)
	}
	if _, err := m.call(contract.OpAdd, name, files...); err != nil {
		m.t.Fatal(err)
	}
}

func (m *mutableFixture) state(name string) contract.ControlAppState {
	m.t.Helper()
	resp, err := m.call(contract.OpState, "")
	if err != nil {
		m.t.Fatal(err)
	}
	for _, a := range resp.Apps {
		if a.Name == name {
			return a
		}
	}
	return contract.ControlAppState{}
}

func (m *mutableFixture) waitState(name, want string) contract.ControlAppState {
	m.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := m.state(name)
		if s.State == want {
			return s
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("app %s is %q, want %q", name, s.State, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMutableAppLifecycle(t *testing.T) {
	m := newMutable(t)
	if fi, err := os.Stat(m.sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v %v", fi, err)
	}
	logf, err := os.Create(filepath.Join(t.TempDir(), "a.log"))
	if err != nil {
		t.Fatal(err)
	}
	m.add("a", `echo run >> /runs; echo out; exit 3`, logf)
	logf.Close()
	if s := m.state("a"); s.State != contract.AppCreated {
		t.Fatalf("added app is %q", s.State)
	}
	if _, err := m.call(contract.OpStart, "nope"); !contract.IsControlError(err, contract.ControlErrNotFound) {
		t.Fatalf("start of an unknown app: %v", err)
	}
	if _, err := m.call(contract.OpStart, "a"); err != nil {
		t.Fatal(err)
	}
	s := m.waitState("a", contract.AppExited)
	if s.ExitCode == nil || *s.ExitCode != 3 {
		t.Fatalf("exit code %v", s.ExitCode)
	}
	if st := m.readStatus("a"); st.ExitCode != 3 {
		t.Fatalf("recorded %+v", st)
	}
	if _, err := os.Stat(filepath.Join(m.status, "a.pid")); !os.IsNotExist(err) {
		t.Errorf("pid file left after exit: %v", err)
	}
	// Restart.
	if _, err := m.call(contract.OpStart, "a"); err != nil {
		t.Fatal(err)
	}
	m.waitState("a", contract.AppExited)
	if got := m.file("runs"); got != "run\nrun\n" {
		t.Errorf("runs %q, want two", got)
	}
	time.Sleep(100 * time.Millisecond)
	if b, _ := os.ReadFile(logf.Name()); string(b) != "out\nout\n" {
		t.Errorf("log file %q", b)
	}
	if !strings.Contains(m.stdout.String(), "a[") {
		t.Errorf("pod output %q lacks the prefixed lines", m.stdout.String())
	}
	// Remove.
	if _, err := m.call(contract.OpRemove, "a"); err != nil {
		t.Fatal(err)
	}
	if s := m.state("a"); s.State != "" {
		t.Fatalf("removed app still %q", s.State)
	}
}

func TestMutableStopAndSiblings(t *testing.T) {
	m := newMutable(t)
	m.add("long", `trap 'echo term >> /long; exit 0' TERM; while :; do sleep 0.1; done`)
	m.add("stubborn", `trap '' TERM; while :; do sleep 0.1; done`)
	m.add("fails", `exit 1`)
	for _, n := range []string{"long", "stubborn", "fails"} {
		if _, err := m.call(contract.OpStart, n); err != nil {
			t.Fatal(err)
		}
	}
	m.waitState("fails", contract.AppExited)
	// A failing app leaves its siblings running.
	time.Sleep(200 * time.Millisecond)
	if s := m.state("long"); s.State != contract.AppRunning || s.Pid == 0 {
		t.Fatalf("sibling %+v", s)
	}
	if _, err := m.call(contract.OpRemove, "long"); !contract.IsControlError(err, contract.ControlErrBusy) {
		t.Fatalf("removing a running app: %v", err)
	}
	if _, err := m.call(contract.OpStart, "long"); !contract.IsControlError(err, contract.ControlErrBusy) {
		t.Fatalf("starting a running app: %v", err)
	}
	if _, err := m.call(contract.OpStop, "long"); err != nil {
		t.Fatal(err)
	}
	if s := m.state("long"); s.State != contract.AppExited || *s.ExitCode != 0 {
		t.Fatalf("stopped app %+v", s)
	}
	if m.file("long") != "term\n" {
		t.Error("the app did not get SIGTERM")
	}
	// The grace period (500ms in the fixture) ends with SIGKILL.
	start := time.Now()
	if _, err := m.call(contract.OpStop, "stubborn"); err != nil {
		t.Fatal(err)
	}
	if s := m.state("stubborn"); *s.ExitCode != 128+int(syscall.SIGKILL) || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("stubborn app %+v after %v", s, time.Since(start))
	}
	// Stopping the pod ends it with 0.
	m.add("again", `sleep 100`)
	if _, err := m.call(contract.OpStart, "again"); err != nil {
		t.Fatal(err)
	}
	m.cancel()
	select {
	case code := <-m.done:
		m.done <- code
		if code != 0 {
			t.Errorf("pod exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the pod did not stop")
	}
}
