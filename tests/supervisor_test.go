package tests

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// supervisorBinary builds the standalone pod supervisor, static and
// stripped as a stage1 image would embed it.
func supervisorBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "orbit-supervisor")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "../cmd/orbit-supervisor")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building orbit-supervisor: %v\n%s", err, out)
	}
	return bin
}

// supervisorCgroupParent is a fresh cgroup path, removed (with anything
// left in it) at the end of the test.
func supervisorCgroupParent(t *testing.T) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	top := "orbit-test-" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		for _, d := range supervisorCgroupDirs(t, top) {
			_ = os.Remove(d)
		}
	})
	return top
}

// supervisorCgroupDirs lists the directories named top under every cgroup
// mount, and below them, deepest first.
func supervisorCgroupDirs(t *testing.T, top string) []string {
	t.Helper()
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/" + top)
	if fi, err := os.Stat("/sys/fs/cgroup/" + top); err == nil && fi.IsDir() {
		roots = append(roots, "/sys/fs/cgroup/"+top)
	}
	var dirs []string
	for _, r := range roots {
		_ = filepath.WalkDir(r, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append([]string{p}, dirs...)
			}
			return nil
		})
	}
	return dirs
}

// The standalone supervisor runs a two-app pod with a memory limit, stays
// small while idle, stops the pod on SIGTERM and records every app.
func TestSupervisorBinary(t *testing.T) {
	t.Parallel()
	bin := supervisorBinary(t)
	root := busyboxRootfs(t)
	status := t.TempDir()
	top := supervisorCgroupParent(t)
	mem := 64 << 20
	cfg := map[string]any{
		"apps": []map[string]any{
			{"app": map[string]any{"name": "one", "root": root, "exec": []string{"/bin/sh", "-c", "echo up > /tmp/one; exec sleep 100"}, "env": []string{"PATH=/bin"}}, "limits": map[string]any{"memoryBytes": mem}},
			{"app": map[string]any{"name": "two", "root": root, "exec": []string{"/bin/sh", "-c", "echo up > /tmp/two; exec sleep 100"}, "env": []string{"PATH=/bin"}}},
		},
		"cgroupParent":    top + "/pod",
		"statusDir":       status,
		"stopGracePeriod": int64(2 * time.Second),
	}
	b, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(t.TempDir(), "pod.json")
	writeFile(t, cfgPath, string(b))

	cmd := exec.Command(bin, cfgPath)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	deadline := time.Now().Add(20 * time.Second)
	for !(fileExists(filepath.Join(root, "tmp/one")) && fileExists(filepath.Join(root, "tmp/two"))) {
		if time.Now().After(deadline) {
			t.Fatalf("apps did not start:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // idle
	rss := vmRSS(t, cmd.Process.Pid)
	fi, _ := os.Stat(bin)
	t.Logf("orbit-supervisor: binary %d KiB, VmRSS %d KiB idle with two apps", fi.Size()/1024, rss)
	if rss > 20*1024 {
		t.Errorf("supervisor VmRSS %d KiB, want it small", rss)
	}
	for _, app := range []string{"one", "two"} {
		if len(supervisorCgroupDirs(t, top+"/pod/"+app)) == 0 {
			t.Errorf("no cgroup for %s", app)
		}
	}

	_ = cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 143 {
		t.Fatalf("supervisor exited with %v, want 143\n%s", err, out.String())
	}
	for _, app := range []string{"one", "two"} {
		b, err := os.ReadFile(filepath.Join(status, app))
		if err != nil || string(b) != "143" {
			t.Errorf("%s status %q %v", app, b, err)
		}
		if d := supervisorCgroupDirs(t, top+"/pod/"+app); len(d) != 0 {
			t.Errorf("%s cgroups left: %v", app, d)
		}
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// vmRSS reads a process's resident set size in KiB.
func vmRSS(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}
