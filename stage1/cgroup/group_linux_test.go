package cgroup

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// The test binary doubles as the program put in groups: with
// ORBIT_CGROUP_TEST_HELPER=alloc it waits for a line on stdin (so the test
// can move it into a group first) and then touches 256MiB.
func TestMain(m *testing.M) {
	if os.Getenv("ORBIT_CGROUP_TEST_HELPER") == "alloc" {
		var b [1]byte
		_, _ = os.Stdin.Read(b[:])
		var keep [][]byte
		for range 256 {
			chunk := make([]byte, 1<<20)
			for i := range chunk {
				chunk[i] = 1
			}
			keep = append(keep, chunk)
		}
		fmt.Println(len(keep))
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// rootLayout skips unless the test runs as root on a host with cgroups.
func rootLayout(t *testing.T) *Layout {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	l, err := Detect()
	if err != nil {
		t.Skip(err)
	}
	return l
}

// testPath is a fresh group path, removed at the end of the test.
func testPath(t *testing.T, l *Layout) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	top := "orbit-test-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		if err := l.Remove(top); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return top
}

func i64(v int64) *int64   { return &v }
func u64(v uint64) *uint64 { return &v }
func readTrim(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestDetectThisHost(t *testing.T) {
	l := rootLayout(t)
	if l.Mode == Hybrid && l.Unified == nil {
		t.Fatal("hybrid without a cgroup2 mount")
	}
	t.Logf("mode %s, %d v1 hierarchies, cgroup2 %+v", l.Mode, len(l.V1), l.Unified)
}

func TestMemoryLimitOOMKill(t *testing.T) {
	l := rootLayout(t)
	top := testPath(t, l)
	g, err := l.Create(top+"/pod/app", Limits{MemoryBytes: i64(32 << 20)})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "ORBIT_CGROUP_TEST_HELPER=alloc")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err := g.Add(cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		t.Fatal(err)
	}
	if pids, err := g.procs(); err != nil || len(pids) != 1 || pids[0] != cmd.Process.Pid {
		t.Errorf("procs() = %v, %v; want [%d]", pids, err, cmd.Process.Pid)
	}
	if oom, err := g.OOMKilled(); err != nil || oom {
		t.Errorf("OOMKilled before allocating = %v, %v", oom, err)
	}
	_, _ = stdin.Write([]byte("\n"))
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("helper exited with %v, want killed", err)
	}
	if ws := ee.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("helper: %v, want SIGKILL", ws)
	}
	if oom, err := g.OOMKilled(); err != nil || !oom {
		t.Errorf("OOMKilled() = %v, %v; want true", oom, err)
	}
}

func TestLimitsLand(t *testing.T) {
	l := rootLayout(t)
	top := testPath(t, l)
	p := top + "/pod/app"
	_, err := l.Create(p, Limits{MemoryBytes: i64(64 << 20), CPUMilli: i64(250), CPUShares: u64(512), PidsMax: i64(42)})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]string{ // controller -> v1 file -> value
		"memory": {"memory.limit_in_bytes": "67108864"},
		"cpu":    {"cpu.cfs_quota_us": "25000", "cpu.cfs_period_us": "100000", "cpu.shares": "512"},
		"pids":   {"pids.max": "42"},
	}
	wantV2 := map[string]map[string]string{
		"memory": {"memory.max": "67108864"},
		"cpu":    {"cpu.max": "25000 100000", "cpu.weight": "20"},
		"pids":   {"pids.max": "42"},
	}
	for c, files := range want {
		dir := ""
		if h := l.v1For(c); h != nil {
			dir = filepath.Join(h.Mountpoint, p)
		} else if l.Unified != nil && l.Unified.Has(c) {
			dir, files = filepath.Join(l.Unified.Mountpoint, p), wantV2[c]
		} else {
			continue
		}
		for f, v := range files {
			if got := readTrim(t, filepath.Join(dir, f)); got != v {
				t.Errorf("%s/%s = %q, want %q", dir, f, got, v)
			}
		}
	}
	if h := l.v1For("cpuacct"); h != nil {
		if _, err := os.Stat(filepath.Join(h.Mountpoint, p)); err != nil {
			t.Errorf("not created under cpuacct: %v", err)
		}
	}
}

func TestKillAndRemove(t *testing.T) {
	l := rootLayout(t)
	top := testPath(t, l)
	g, err := l.Create(top+"/pod/app", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Create(top+"/pod/other", Limits{PidsMax: i64(10)}); err != nil {
		t.Fatal(err)
	}
	// A shell with children of its own: Kill must get them all.
	cmd := exec.Command("/bin/sh", "-c", "read x; sleep 100 & sleep 100 & wait")
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if err := g.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	_, _ = stdin.Write([]byte("go\n"))
	waitFor(t, func() bool { p, _ := g.procs(); return len(p) == 3 })
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	if p, err := g.procs(); err != nil || len(p) != 0 {
		t.Errorf("after Kill: %v %v", p, err)
	}
	<-done

	// Remove kills what is left and removes the whole sub-tree everywhere.
	g2, err := l.Create(top+"/pod/app", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command("sleep", "100")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = sleeper.Wait() }()
	if err := g2.Add(sleeper.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := l.Remove(top + "/pod"); err != nil {
		t.Fatal(err)
	}
	if l.Exists(top+"/pod") || l.Exists(top+"/pod/app") {
		t.Error("group still exists after Remove")
	}
	for _, h := range l.hierarchies() {
		if _, err := os.Stat(filepath.Join(h.Mountpoint, top, "pod")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: %v", h.Mountpoint, err)
		}
	}
	if err := l.Remove(top + "/pod"); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if err := l.Remove(top); err != nil {
		t.Fatal(err)
	}
	if l.Exists(top) {
		t.Error("top group left")
	}
}

func TestCreateErrors(t *testing.T) {
	l := rootLayout(t)
	if _, err := l.Create("../escape", Limits{}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("escape: %v", err)
	}
	if _, err := l.Create("orbit-test-x", Limits{MemoryBytes: i64(-1)}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("bad limit: %v", err)
	}
	if l.Exists("orbit-test-x") {
		t.Error("a failed Create left a group")
	}
	if err := l.Remove("/"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("Remove(/) = %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 5s")
}

// The SIGKILL loop, as used by Remove on hosts without cgroup.kill.
func TestKillWithoutCgroupKill(t *testing.T) {
	l := rootLayout(t)
	top := testPath(t, l)
	g, err := l.Create(top+"/app", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sh", "-c", "read x; sleep 100 & sleep 100 & wait")
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = cmd.Wait() }()
	if err := g.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	_, _ = stdin.Write([]byte("go\n"))
	waitFor(t, func() bool { p, _ := g.procs(); return len(p) == 3 })
	if err := killDirs(g.dirs, ""); err != nil {
		t.Fatal(err)
	}
	if p, _ := g.procs(); len(p) != 0 {
		t.Errorf("left: %v", p)
	}
}

// A cgroup2-only host, simulated by a directory tree with the control files
// pre-created: controllers are enabled in every ancestor and the limits are
// written in v2 terms.
func TestCreateUnifiedFake(t *testing.T) {
	root := t.TempDir()
	p := "orbit/pod/app"
	for _, d := range []string{"", "orbit", "orbit/pod", p} {
		dir := filepath.Join(root, d)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"cgroup.subtree_control", "cgroup.procs", "memory.max", "memory.events", "cpu.max", "cpu.weight", "pids.max"} {
			if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	l := &Layout{Mode: Unified, Unified: &Hierarchy{Mountpoint: root, Root: "/", Controllers: []string{"cpu", "memory", "pids"}}}
	g, err := l.Create(p, Limits{MemoryBytes: i64(1 << 20), CPUMilli: i64(1500), CPUShares: u64(1024)})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"", "orbit", "orbit/pod"} {
		if got := readTrim(t, filepath.Join(root, d, "cgroup.subtree_control")); got != "+memory +cpu" {
			t.Errorf("%q subtree_control = %q", d, got)
		}
	}
	if got := readTrim(t, filepath.Join(root, p, "cgroup.subtree_control")); got != "" {
		t.Errorf("leaf subtree_control = %q, want untouched", got)
	}
	for f, want := range map[string]string{"memory.max": "1048576", "cpu.max": "150000 100000", "cpu.weight": "39", "pids.max": ""} {
		if got := readTrim(t, filepath.Join(root, p, f)); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	if !g.memoryV2 || g.memory != filepath.Join(root, p) {
		t.Errorf("memory accounting dir %q (v2 %v)", g.memory, g.memoryV2)
	}
	if err := os.WriteFile(filepath.Join(root, p, "memory.events"), []byte("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if oom, err := g.OOMKilled(); err != nil || !oom {
		t.Errorf("OOMKilled() = %v, %v", oom, err)
	}
	l.Unified.Controllers = nil
	if _, err := l.Create("z", Limits{MemoryBytes: i64(1)}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("memory limit without a memory controller: %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(root, "z")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("failed Create left %v", err)
	}
}

// A process started with StartIn is in the group before it runs a single
// instruction of its own, and the starting thread goes back where it was.
func TestStartIn(t *testing.T) {
	l := rootLayout(t)
	top := testPath(t, l)
	g, err := l.Create(top+"/app", Limits{PidsMax: i64(50)})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile("/proc/self/cgroup")
	cmd := exec.Command("/bin/cat", "/proc/self/cgroup")
	var out strings.Builder
	cmd.Stdout = &out
	if err := g.StartIn(cmd, cmd.Start); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	in := 0
	for _, line := range lines {
		if strings.HasSuffix(line, ":/"+top+"/app") {
			in++
		}
	}
	if in != len(g.dirs) {
		t.Errorf("the child was in the group in %d hierarchies, want %d:\n%s", in, len(g.dirs), out.String())
	}
	tasks, _ := filepath.Glob("/proc/self/task/*/cgroup")
	for _, tf := range tasks {
		b, _ := os.ReadFile(tf)
		if strings.Contains(string(b), top) {
			t.Errorf("%s still in the group:\n%s", tf, b)
		}
	}
	if after, _ := os.ReadFile("/proc/self/cgroup"); string(after) != string(before) {
		t.Errorf("own cgroups changed:\n%s\nto\n%s", before, after)
	}
}

// A group stays usable after Kill: processes started in it afterwards live.
func TestStartInAfterKill(t *testing.T) {
	l := rootLayout(t)
	top := testPath(t, l)
	g, err := l.Create(top+"/app", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		cmd := exec.Command("/bin/true")
		if err := g.StartIn(cmd, cmd.Start); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if err := g.Kill(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOwnDir(t *testing.T) {
	own, err := parseProcCgroup(strings.NewReader("12:cpuacct,cpu:/user/1\n4:memory:/machine/pod/app\n1:name=systemd:/x\n0::/y\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		h    Hierarchy
		want string
		ok   bool
	}{
		{Hierarchy{Mountpoint: "/sys/fs/cgroup/cpu,cpuacct", Root: "/", Controllers: []string{"cpu", "cpuacct"}}, "/sys/fs/cgroup/cpu,cpuacct/user/1", true},
		{Hierarchy{Mountpoint: "/m", Root: "/machine/pod", Controllers: []string{"memory"}}, "/m/app", true},
		{Hierarchy{Mountpoint: "/m", Root: "/machine/other", Controllers: []string{"memory"}}, "", false},
		{Hierarchy{Mountpoint: "/s", Root: "/", Name: "systemd"}, "/s/x", true},
		{Hierarchy{Mountpoint: "/p", Root: "/", Controllers: []string{"pids"}}, "", false},
	} {
		got, ok := ownDir(&c.h, own)
		if got != c.want || ok != c.ok {
			t.Errorf("ownDir(%+v) = %q %v, want %q %v", c.h, got, ok, c.want, c.ok)
		}
	}
}

// A confined group's v1 devices cgroup lists exactly the allowed devices.
func TestCreateConfinedV1(t *testing.T) {
	l := rootLayout(t)
	h := l.v1For("devices")
	if h == nil {
		t.Skip("no v1 devices hierarchy")
	}
	p := testPath(t, l)
	if _, err := l.CreateConfined(p, Limits{}, []DeviceRule{{Type: 'x', Major: 1, Minor: 3, Access: "r"}}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("bad rule: %v, want ErrInvalid", err)
	}
	g, err := l.CreateConfined(p, Limits{}, DefaultDevices())
	if err != nil {
		t.Fatal(err)
	}
	if !g.DevicesV1() {
		t.Fatal("the devices hierarchy does not enforce the rules")
	}
	got := readTrim(t, filepath.Join(h.Mountpoint, p, "devices.list"))
	var want []string
	for _, r := range DefaultDevices() {
		want = append(want, r.String())
	}
	if got != strings.Join(want, "\n") {
		t.Errorf("devices.list:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	// A plain group is not put in the devices hierarchy.
	plain, err := l.Create(p+"/plain", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if plain.DevicesV1() {
		t.Error("Create confined a group")
	}
}
