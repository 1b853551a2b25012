package supervisor

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/cgroup"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage2"
)

// The test binary is also the stage2 launcher: stage2.Command re-executes
// /proc/self/exe under the launcher's name.
func TestMain(m *testing.M) {
	if strings.HasSuffix(os.Args[0], stage2.LauncherName) {
		os.Exit(stage2.Main(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// syncBuffer is a bytes.Buffer safe to read while the pod writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fixture is a pod under test: a busybox rootfs shared by its apps, a
// status dir, a cgroup parent and captured output.
type fixture struct {
	t              *testing.T
	root, status   string
	cgroupParent   string
	layout         *cgroup.Layout
	stdout, stderr syncBuffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Skip("needs busybox-static:", err)
	}
	f := &fixture{t: t, root: filepath.Join(t.TempDir(), "rootfs"), status: t.TempDir()}
	bin := filepath.Join(f.root, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"sh", "sleep", "echo", "cat", "dd", "touch", "true", "false", "kill"} {
		if err := os.Symlink("busybox", filepath.Join(bin, n)); err != nil {
			t.Fatal(err)
		}
	}
	if f.layout, err = cgroup.Detect(); err != nil {
		t.Skip(err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	top := "orbit-test-" + hex.EncodeToString(b[:])
	f.cgroupParent = top + "/pod"
	t.Cleanup(func() {
		if err := f.layout.Remove(top); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return f
}

// app is an app of the fixture's pod running sh -c script.
func (f *fixture) app(name, script string) AppSpec {
	return AppSpec{App: stage2.App{
		Name: name,
		Root: f.root,
		Exec: []string{"/bin/sh", "-c", script},
		Env:  []string{"PATH=/bin", "FOO=bar"},
	}}
}

func (f *fixture) config(apps ...AppSpec) Config {
	return Config{
		Apps:            apps,
		CgroupParent:    f.cgroupParent,
		StatusDir:       f.status,
		StopGracePeriod: 500 * time.Millisecond,
		Stdout:          &f.stdout,
		Stderr:          &f.stderr,
		Log:             slog.New(slog.NewTextHandler(testWriter{f.t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
}

// testWriter sends the supervisor's log to the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func (f *fixture) run(cfg Config) int {
	f.t.Helper()
	code, err := Run(context.Background(), cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	return code
}

func (f *fixture) readStatus(name string) Status {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(f.status, name))
	if err != nil {
		f.t.Fatal(err)
	}
	var st Status
	jb, err := os.ReadFile(filepath.Join(f.status, name+".json"))
	if err != nil {
		f.t.Fatal(err)
	}
	if err := json.Unmarshal(jb, &st); err != nil {
		f.t.Fatal(err)
	}
	if string(b) != strconv.Itoa(st.ExitCode) {
		f.t.Errorf("%s: status file %q, json %d", name, b, st.ExitCode)
	}
	return st
}

func (f *fixture) file(name string) string {
	b, _ := os.ReadFile(filepath.Join(f.root, name))
	return string(b)
}

func TestSingleAppPassesThrough(t *testing.T) {
	f := newFixture(t)
	before := time.Now()
	code := f.run(f.config(f.app("one", "echo hello; echo oops >&2; exit 7")))
	if code != 7 {
		t.Errorf("pod exit %d, want the app's 7", code)
	}
	if f.stdout.String() != "hello\n" || f.stderr.String() != "oops\n" {
		t.Errorf("stdout %q stderr %q, want them unprefixed", f.stdout.String(), f.stderr.String())
	}
	st := f.readStatus("one")
	if st.ExitCode != 7 || st.Signal != "" || st.OOMKilled || st.StartedAt.Before(before) || st.ExitedAt.Before(st.StartedAt) {
		t.Errorf("status %+v", st)
	}
	fi, _ := os.Stat(filepath.Join(f.status, "one"))
	if !fi.ModTime().Equal(st.ExitedAt) {
		t.Errorf("status mtime %v, exit time %v", fi.ModTime(), st.ExitedAt)
	}
	if f.layout.Exists(f.cgroupParent + "/one") {
		t.Error("the app's cgroup outlived it")
	}
}

func TestEventHandlerOrder(t *testing.T) {
	f := newFixture(t)
	a := f.app("web", `echo "app $FOO $$" >> /log`)
	a.PreStart = [][]string{{"/bin/sh", "-c", `echo "pre1 $FOO" >> /log`}, {"/bin/sh", "-c", `echo "pre2 $FOO" >> /log`}}
	a.PostStop = [][]string{{"/bin/sh", "-c", `echo "post $FOO" >> /log`}}
	if code := f.run(f.config(a)); code != 0 {
		t.Errorf("pod exit %d", code)
	}
	got := regexp.MustCompile(`app bar \d+`).ReplaceAllString(f.file("log"), "app bar PID")
	if want := "pre1 bar\npre2 bar\napp bar PID\npost bar\n"; got != want {
		t.Errorf("log %q, want %q", got, want)
	}
}

func TestPreStartFailureSkipsApp(t *testing.T) {
	f := newFixture(t)
	a := f.app("web", `echo app >> /log`)
	a.PreStart = [][]string{{"/bin/sh", "-c", "echo pre >> /log; exit 3"}}
	a.PostStop = [][]string{{"/bin/sh", "-c", "echo post >> /log"}}
	if code := f.run(f.config(a)); code != 3 {
		t.Errorf("pod exit %d, want the handler's 3", code)
	}
	if got := f.file("log"); got != "pre\npost\n" {
		t.Errorf("log %q: the app must not run, post-stop must", got)
	}
	if st := f.readStatus("web"); st.ExitCode != 3 || !strings.Contains(st.Error, "pre-start") {
		t.Errorf("status %+v", st)
	}
}

func TestFirstFailureStopsOthers(t *testing.T) {
	f := newFixture(t)
	start := time.Now()
	code := f.run(f.config(
		f.app("bad", "sleep 0.3; exit 5"),
		f.app("polite", "exec sleep 100"),
		f.app("stubborn", `trap "" TERM; sleep 100`),
	))
	if code != 5 {
		t.Errorf("pod exit %d, want the failed app's 5", code)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if st := f.readStatus("polite"); st.ExitCode != 143 || st.Signal != "SIGTERM" {
		t.Errorf("polite: %+v, want killed by SIGTERM", st)
	}
	if st := f.readStatus("stubborn"); st.ExitCode != 137 || st.Signal != "SIGKILL" {
		t.Errorf("stubborn: %+v, want SIGKILL after the grace period", st)
	}
}

func TestMultiAppPrefixesAndSucceeds(t *testing.T) {
	f := newFixture(t)
	code := f.run(f.config(
		f.app("a", `echo "pid=$$"; printf "no newline"`),
		f.app("b", `sleep 0.2; echo "pid=$$" >&2`),
	))
	if code != 0 {
		t.Errorf("pod exit %d, want 0 when every app succeeds", code)
	}
	m := regexp.MustCompile(`^a\[(\d+)\]: pid=(\d+)\na\[(\d+)\]: no newline\n$`).FindStringSubmatch(f.stdout.String())
	if m == nil || m[1] != m[2] || m[1] != m[3] {
		t.Errorf("stdout %q: want each line prefixed with the app's name and pid", f.stdout.String())
	}
	m = regexp.MustCompile(`^b\[(\d+)\]: pid=(\d+)\n$`).FindStringSubmatch(f.stderr.String())
	if m == nil || m[1] != m[2] {
		t.Errorf("stderr %q", f.stderr.String())
	}
	for _, n := range []string{"a", "b"} {
		if st := f.readStatus(n); st.ExitCode != 0 {
			t.Errorf("%s: %+v", n, st)
		}
	}
}

// SIGTERM, SIGINT and systemd's halt request each stop the pod: the signal
// (SIGTERM for the halt request) reaches every app.
func TestStopSignals(t *testing.T) {
	for _, c := range []struct {
		send syscall.Signal
		got  string
		code int
	}{
		{syscall.SIGTERM, "SIGTERM", 143},
		{syscall.SIGINT, "SIGINT", 130},
		{sigHalt, "SIGTERM", 143},
	} {
		t.Run(c.got+"-"+strconv.Itoa(int(c.send)), func(t *testing.T) {
			f := newFixture(t)
			cfg := f.config(f.app("a", "echo x > /started; exec sleep 100"), f.app("b", "echo x > /started-b; exec sleep 100"))
			go func() {
				for f.file("started") == "" || f.file("started-b") == "" {
					time.Sleep(20 * time.Millisecond)
				}
				_ = syscall.Kill(os.Getpid(), c.send)
			}()
			start := time.Now()
			if code := f.run(cfg); code != c.code {
				t.Errorf("pod exit %d, want %d", code, c.code)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
			for _, n := range []string{"a", "b"} {
				if st := f.readStatus(n); st.Signal != c.got {
					t.Errorf("%s: %+v, want killed by %s", n, st, c.got)
				}
			}
		})
	}
}

func TestContextCancelStopsPod(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	code, err := Run(ctx, f.config(f.app("a", "exec sleep 100")))
	if err != nil || code != 143 {
		t.Errorf("Run = %d, %v; want 143", code, err)
	}
}

// A grandchild orphaned by its app is re-parented to the supervisor, which
// must reap it while the pod still runs.
func TestOrphanIsReaped(t *testing.T) {
	f := newFixture(t)
	cfg := f.config(f.app("parent", "sleep 0.3 & echo $! > /orphan; exit 0"), f.app("other", "sleep 2"))
	cfg.CgroupParent = "" // let the orphan live on its own instead of being killed
	var zombie bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for f.file("orphan") == "" {
			time.Sleep(10 * time.Millisecond)
		}
		pid := strings.TrimSpace(f.file("orphan"))
		deadline := time.Now().Add(1500 * time.Millisecond)
		for {
			b, err := os.ReadFile("/proc/" + pid + "/stat")
			if err != nil {
				return // gone: reaped
			}
			if time.Now().After(deadline) {
				zombie = strings.Contains(string(b), ") Z ")
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	if code := f.run(cfg); code != 0 {
		t.Errorf("pod exit %d", code)
	}
	<-done
	if zombie {
		t.Error("the orphan stayed a zombie")
	}
}

func TestOOMKillRecorded(t *testing.T) {
	f := newFixture(t)
	a := f.app("hog", "dd if=/dev/zero of=/dev/null bs=200M count=1")
	a.App.Mounts = []stage2.Mount{
		{Source: "/dev/zero", Target: "/dev/zero", FSType: "bind", CreateFile: true},
		{Source: "/dev/null", Target: "/dev/null", FSType: "bind", CreateFile: true},
	}
	mem := int64(32 << 20)
	a.Limits = cgroup.Limits{MemoryBytes: &mem}
	if code := f.run(f.config(a)); code != 137 {
		t.Errorf("pod exit %d, want 137; stderr %q", code, f.stderr.String())
	}
	if st := f.readStatus("hog"); !st.OOMKilled || st.Signal != "SIGKILL" {
		t.Errorf("status %+v, want OOM-killed", st)
	}
	if f.layout.Exists(f.cgroupParent + "/hog") {
		t.Error("the app's cgroup outlived it")
	}
}

func TestLaunchFailureRecorded(t *testing.T) {
	f := newFixture(t)
	a := f.app("ghost", "")
	a.App.Exec = []string{"/bin/no-such-program"}
	if code := f.run(f.config(a)); code != stage2.ExitNotFound {
		t.Errorf("pod exit %d, want %d", code, stage2.ExitNotFound)
	}
	if !strings.Contains(f.stderr.String(), "no-such-program") {
		t.Errorf("stderr %q: want the launcher's reason", f.stderr.String())
	}
}

func TestMainRunsConfigFile(t *testing.T) {
	f := newFixture(t)
	cfg := f.config(f.app("m", "exit 4"))
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "pod.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if code := Main([]string{p}); code != 4 {
		t.Errorf("Main = %d, want 4", code)
	}
	if st := f.readStatus("m"); st.ExitCode != 4 {
		t.Errorf("status %+v", st)
	}
	if code := Main([]string{filepath.Join(t.TempDir(), "missing.json")}); code != contract.ExitFailure {
		t.Errorf("missing config: %d, want %d", code, contract.ExitFailure)
	}
}

// SIGHUP is passed on to the apps and does not stop the pod.
func TestSIGHUPForwarded(t *testing.T) {
	f := newFixture(t)
	cfg := f.config(f.app("a", `trap "echo hup > /hup; exit 0" HUP; echo x > /ready; while true; do sleep 0.05; done`))
	go func() {
		for f.file("ready") == "" {
			time.Sleep(20 * time.Millisecond)
		}
		_ = syscall.Kill(os.Getpid(), syscall.SIGHUP)
	}()
	if code := f.run(cfg); code != 0 {
		t.Errorf("pod exit %d, want the app's 0", code)
	}
	if f.file("hup") != "hup\n" {
		t.Error("the app did not get SIGHUP")
	}
}

func TestRunRefusesBadConfig(t *testing.T) {
	f := newFixture(t)
	cfg := f.config(f.app("a", "true"))
	cfg.StatusDir = filepath.Join(f.status, "missing")
	if _, err := Run(context.Background(), cfg); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("missing status dir: %v, want ErrInvalid", err)
	}
	cfg = f.config(f.app("a", "true"), f.app("a", "true"))
	if _, err := Run(context.Background(), cfg); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("duplicate app: %v, want ErrInvalid", err)
	}
}
