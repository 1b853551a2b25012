package stage0

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/stage1/contract"
)

func TestStatStartTime(t *testing.T) {
	// A command name with spaces and parentheses, as a hostile process
	// may choose.
	line := "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 10 18446744073709551615"
	got, err := statStartTime(line)
	if err != nil || got != 123456 {
		t.Fatalf("statStartTime = %d, %v; want 123456", got, err)
	}
	if _, err := statStartTime("42 (x) S 1"); err == nil {
		t.Fatal("a short stat line was accepted")
	}
}

func TestProcessesLive(t *testing.T) {
	if os.Geteuid() != 0 && os.Getenv("CI") != "true" {
		t.Skip("needs root for a PID namespace")
	}
	dir := t.TempDir()
	if processesLive(dir) {
		t.Fatal("a pod that recorded nothing is live")
	}
	cmd := exec.Command("/bin/sh", "-c", "sleep 60 & wait")
	cmd.SysProcAttr = &unix.SysProcAttr{Cloneflags: unix.CLONE_NEWPID}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pidFile := contract.PidFile(dir)
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if !processesLive(dir) {
		t.Fatal("the pod's live PID 1 is not seen")
	}
	// A pid file written long before the process started: the PID was
	// reused by a later process.
	old := time.Now().Add(-time.Hour)
	os.Chtimes(pidFile, old, old)
	if processesLive(dir) {
		t.Fatal("a process that started after the pid file was written counts as the pod's")
	}
	// Alive but no PID namespace's init.
	os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o644)
	if processesLive(dir) {
		t.Fatal("a process that is no namespace's init counts as the pod's")
	}
	// With cgroups recorded, they alone count.
	cg := filepath.Join(dir, "cg")
	os.MkdirAll(filepath.Join(cg, "app"), 0o755)
	os.WriteFile(filepath.Join(cg, "cgroup.procs"), nil, 0o644)
	os.WriteFile(filepath.Join(cg, "app", "cgroup.procs"), nil, 0o644)
	os.WriteFile(contract.CgroupsFile(dir), []byte(cg+"\n"), 0o644)
	os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
	if processesLive(dir) {
		t.Fatal("empty cgroups, yet live")
	}
	os.WriteFile(filepath.Join(cg, "app", "cgroup.procs"), []byte("99\n"), 0o644)
	if !processesLive(dir) {
		t.Fatal("a process in the pod's cgroups is not seen")
	}
}

// A pod in run that nobody holds locked is running while its cgroups hold
// a process: status says so, gc neither marks nor removes it.
func TestUnlockedPodWithProcessesRuns(t *testing.T) {
	pods := t.TempDir()
	if err := ensurePodsDirs(pods); err != nil {
		t.Fatal(err)
	}
	id := "6f1f8c3e-2b7e-4f0c-8f55-3c7f0f6b2a10"
	dir := filepath.Join(pods, string(dirRun), id)
	cg := filepath.Join(t.TempDir(), "cg")
	os.MkdirAll(dir, 0o711)
	os.MkdirAll(cg, 0o755)
	procs := filepath.Join(cg, "cgroup.procs")
	os.WriteFile(procs, []byte("4242\n"), 0o644)
	os.WriteFile(contract.CgroupsFile(dir), []byte(cg+"\n"), 0o644)

	p, err := Get(pods, id)
	if err != nil || p.State != Running {
		t.Fatalf("Get = %v, %v; want running", p, err)
	}
	if err := GC(t.Context(), pods, GCConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("gc moved a pod whose processes live: %v", err)
	}
	// Marked before (an older orbit): the sweep leaves it too.
	if err := p.move(dirExitedGarbage); err != nil {
		t.Fatal(err)
	}
	if err := GC(t.Context(), pods, GCConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p.Path()); err != nil {
		t.Fatalf("gc removed a pod whose processes live: %v", err)
	}
	if err := p.move(dirRun); err != nil {
		t.Fatal(err)
	}

	os.WriteFile(procs, nil, 0o644)
	if p, err = Get(pods, id); err != nil || p.State != Exited {
		t.Fatalf("Get = %v, %v; want exited", p, err)
	}
	if err := GC(t.Context(), pods, GCConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("gc left an exited pod in run")
	}
}
