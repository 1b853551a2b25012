package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// lifecycleBuffer is a command's output in a file, read while the command
// still writes. A file, not a pipe: a process that outlives the command
// would keep a pipe open and hold up the command's Wait.
type lifecycleBuffer struct{ f *os.File }

func (b *lifecycleBuffer) String() string {
	data, _ := os.ReadFile(b.f.Name())
	return string(data)
}

// lifecycleWaitOutput waits until the output holds want.
func lifecycleWaitOutput(t testing.TB, b *lifecycleBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(b.String(), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("output never held %q: %q", want, b.String())
}

// lifecycleApp is an app that says it is ready only once its SIGTERM trap
// is set; on SIGTERM it prints got-term and exits 7. The marker is its
// $0, so it shows in its command line.
func lifecycleApp(t *testing.T, marker string) string {
	return busyboxACI(t, "example.com/lifecycle", "/bin/sh", "-c",
		"trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done", marker)
}

// lifecycleMarker is a marker unique to the test and the moment.
func lifecycleMarker() string {
	return fmt.Sprintf("orbit-lifecycle-%d-%d", os.Getpid(), time.Now().UnixNano())
}

// lifecycleStart runs the app in a pod with `orbit run` and waits for the
// app to be ready.
func lifecycleStart(t *testing.T, e *env, aci string) (*exec.Cmd, *lifecycleBuffer, string) {
	t.Helper()
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	cmd := e.command("run", "--insecure-options=image", "--uuid-file-save="+uuidFile, aci)
	f, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	out := &lifecycleBuffer{f: f}
	cmd.Stdout = f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	uuid := waitRunning(t, e, uuidFile)
	lifecycleWaitOutput(t, out, "ready")
	return cmd, out, uuid
}

// lifecyclePodProcs lists the live processes of a pod: those whose command
// line holds the marker or the pod's UUID (systemd-nspawn's), or that are
// in one of the pod's cgroups.
func lifecyclePodProcs(uuid, marker string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, ent := range ents {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		cgroups, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && strings.HasPrefix(string(stat[i:]), ") Z") {
			continue // a zombie is not alive
		}
		if strings.Contains(string(cmdline), marker) || strings.Contains(string(cmdline), uuid) || strings.Contains(string(cgroups), uuid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// lifecycleWaitGone waits until no process of the pod is left.
func lifecycleWaitGone(t *testing.T, uuid, marker string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if len(lifecyclePodProcs(uuid, marker)) == 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("processes of pod %s still alive: %v", uuid, lifecyclePodProcs(uuid, marker))
}

// lifecycleWait waits for a started command to end.
func lifecycleWait(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("orbit run did not end")
	}
}

// lifecycleCheckStatus checks that status never says exited while a
// process of the pod is alive after it said so, and returns the status.
func lifecycleCheckStatus(t *testing.T, e *env, uuid, marker string) string {
	t.Helper()
	st := e.mustRun("status", uuid).Stdout
	if left := lifecyclePodProcs(uuid, marker); strings.Contains(st, "state=exited") && len(left) > 0 {
		t.Fatalf("status says exited while processes %v of the pod live:\n%s", left, st)
	}
	return st
}

// TestLifecycleSignalsStopPod: every signal that would end orbit run stops
// the pod as SIGTERM does, and nothing of it survives.
func TestLifecycleSignalsStopPod(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel() // its own env
			e := newEnv(t)
			marker := lifecycleMarker()
			cmd, out, uuid := lifecycleStart(t, e, lifecycleApp(t, marker))
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			lifecycleWait(t, cmd)
			if code := cmd.ProcessState.ExitCode(); code != 7 {
				t.Errorf("orbit run exited %d (%s), want the app's 7", code, cmd.ProcessState)
			}
			if !strings.Contains(out.String(), "got-term") {
				t.Errorf("the app was not stopped with SIGTERM: %q", out.String())
			}
			if left := lifecyclePodProcs(uuid, marker); len(left) > 0 {
				t.Errorf("processes of the pod survive orbit run: %v", left)
			}
			st := lifecycleCheckStatus(t, e, uuid, marker)
			if !strings.Contains(st, "state=exited") || !strings.Contains(st, "app-lifecycle=7") {
				t.Fatalf("status after %s: %s", sig, st)
			}
			e.mustRun("gc", "--grace-period=0s")
			if out := e.mustRun("list", "--no-legend").Stdout; strings.Contains(out, uuid[:8]) {
				t.Fatalf("gc left the stopped pod: %s", out)
			}
		})
	}
}

// TestLifecycleKilledRun: orbit run killed with SIGKILL leaves the pod
// running; status and gc agree, and stop ends it.
func TestLifecycleKilledRun(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	marker := lifecycleMarker()
	cmd, _, uuid := lifecycleStart(t, e, lifecycleApp(t, marker))
	cmd.Process.Kill()
	lifecycleWait(t, cmd)
	if len(lifecyclePodProcs(uuid, marker)) == 0 {
		t.Fatal("the pod ended with orbit run")
	}
	if st := lifecycleCheckStatus(t, e, uuid, marker); !strings.Contains(st, "state=running") {
		t.Fatalf("status of a live pod: %s", st)
	}
	e.mustRun("gc", "--grace-period=0s")
	if out := e.mustRun("list", "--no-legend").Stdout; !strings.Contains(out, uuid[:8]) || !strings.Contains(out, "running") {
		t.Fatalf("gc collected a live pod: %s", out)
	}
	e.mustRun("stop", uuid)
	lifecycleWaitGone(t, uuid, marker)
	if st := lifecycleCheckStatus(t, e, uuid, marker); !strings.Contains(st, "state=exited") || !strings.Contains(st, "app-lifecycle=7") {
		t.Fatalf("status after stop: %s", st)
	}
	e.mustRun("gc", "--grace-period=0s")
	if out := e.mustRun("list", "--no-legend").Stdout; strings.Contains(out, uuid[:8]) {
		t.Fatalf("gc left the stopped pod: %s", out)
	}
}

// TestLifecycleKilledNspawn: with orbit run and systemd-nspawn both killed
// with SIGKILL, nothing holds the pod's lock any more: the pod still counts
// as running while any of its processes lives, gc leaves it, the supervisor
// stops the apps in order, and then the statuses are right.
func TestLifecycleKilledNspawn(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	marker := lifecycleMarker()
	cmd, _, uuid := lifecycleStart(t, e, lifecycleApp(t, marker))
	data, err := os.ReadFile(filepath.Join(e.Dir, "pods", "run", uuid, "nspawn.pid"))
	if err != nil {
		t.Fatal(err)
	}
	nspawn, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Process.Kill()
	syscall.Kill(nspawn, syscall.SIGKILL)
	lifecycleWait(t, cmd)
	for deadline := time.Now().Add(30 * time.Second); len(lifecyclePodProcs(uuid, marker)) > 0; {
		lifecycleCheckStatus(t, e, uuid, marker)
		// gc marks a pod it finds exited; only marking, so that a pod whose
		// last process ends just after the check above keeps its statuses
		// for the check below the loop.
		e.mustRun("gc", "--mark-only")
		if _, err := os.Stat(filepath.Join(e.Dir, "pods", "run", uuid)); err != nil && len(lifecyclePodProcs(uuid, marker)) > 0 {
			t.Fatalf("gc moved a pod whose processes live: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pod did not stop after nspawn died: %v", lifecyclePodProcs(uuid, marker))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The kernel marks the pod's cgroups empty a moment after their last
	// process is gone, which a loaded machine stretches: until then the
	// pod still counts as running.
	st := lifecycleCheckStatus(t, e, uuid, marker)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(st, "state=exited") && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		st = lifecycleCheckStatus(t, e, uuid, marker)
	}
	if !strings.Contains(st, "state=exited") || !strings.Contains(st, "app-lifecycle=7") {
		t.Fatalf("status once the pod ended: %s", st)
	}
	e.mustRun("gc", "--grace-period=0s")
	if out := e.mustRun("list", "--no-legend").Stdout; strings.Contains(out, uuid[:8]) {
		t.Fatalf("gc left the stopped pod: %s", out)
	}
}

// TestLifecycleKilledNspawnOnly: with systemd-nspawn killed and orbit run
// alive, run ends only once the pod's last process is gone, the apps
// stopped in order.
func TestLifecycleKilledNspawnOnly(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	marker := lifecycleMarker()
	cmd, out, uuid := lifecycleStart(t, e, lifecycleApp(t, marker))
	data, err := os.ReadFile(filepath.Join(e.Dir, "pods", "run", uuid, "nspawn.pid"))
	if err != nil {
		t.Fatal(err)
	}
	nspawn, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	syscall.Kill(nspawn, syscall.SIGKILL)
	lifecycleWait(t, cmd)
	if left := lifecyclePodProcs(uuid, marker); len(left) > 0 {
		t.Fatalf("orbit run ended while processes %v of the pod live", left)
	}
	if code := cmd.ProcessState.ExitCode(); code != 137 {
		t.Errorf("orbit run exited %d, want 137 (nspawn was killed)", code)
	}
	if !strings.Contains(out.String(), "got-term") {
		t.Errorf("the app was not stopped with SIGTERM: %q", out.String())
	}
	if st := lifecycleCheckStatus(t, e, uuid, marker); !strings.Contains(st, "state=exited") || !strings.Contains(st, "app-lifecycle=7") {
		t.Fatalf("status once the pod ended: %s", st)
	}
}

// TestLifecycleNohup: started with SIGHUP ignored (nohup), orbit run keeps
// it ignored: a hangup does not stop the pod.
func TestLifecycleNohup(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	nohup := requireTool(t, "nohup", "coreutils")
	e := newEnv(t)
	marker := lifecycleMarker()
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	cmd := e.command("run", "--insecure-options=image", "--uuid-file-save="+uuidFile, lifecycleApp(t, marker))
	cmd.Args = append([]string{"nohup", cmd.Path}, cmd.Args[1:]...)
	cmd.Path = nohup
	f, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdout = f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	uuid := waitRunning(t, e, uuidFile)
	out := &lifecycleBuffer{f: f}
	lifecycleWaitOutput(t, out, "ready")
	cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(time.Second)
	if st := e.mustRun("status", uuid).Stdout; !strings.Contains(st, "state=running") || strings.Contains(out.String(), "got-term") {
		t.Fatalf("SIGHUP under nohup stopped the pod: %s %q", st, out.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	lifecycleWait(t, cmd)
	if code := cmd.ProcessState.ExitCode(); code != 7 {
		t.Errorf("orbit run exited %d after SIGTERM, want 7", code)
	}
	lifecycleWaitGone(t, uuid, marker)
}
