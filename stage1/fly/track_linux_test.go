package fly

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/stage1/contract"
)

// sleeper starts a process that lives until the test ends.
func sleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// fakeGroup writes a directory that looks like a cgroup holding pids.
func fakeGroup(t *testing.T, pids ...int) string {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	for _, p := range pids {
		b.WriteString(strconv.Itoa(p) + "\n")
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// podDir writes a pod directory's pid and cgroups files.
func podDir(t *testing.T, pid int, groups ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(contract.PidFile(dir), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if len(groups) > 0 {
		if err := os.WriteFile(contract.CgroupsFile(dir), []byte(strings.Join(groups, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// endedBy waits for cmd and returns the signal that ended it, or -1.
func endedBy(t *testing.T, cmd *exec.Cmd) syscall.Signal {
	t.Helper()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		return -1
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal()
	}
	return -1
}

func TestTrackedProcs(t *testing.T) {
	a, b := fakeGroup(t, 5, 7), fakeGroup(t, 7, 3, 0)
	got, err := trackedProcs([]string{a, b, filepath.Join(t.TempDir(), "gone")})
	if err != nil || len(got) != 3 || got[0] != 3 || got[1] != 5 || got[2] != 7 {
		t.Fatalf("trackedProcs = %v, %v; want [3 5 7]", got, err)
	}
	if _, err := trackedProcs([]string{fakeGroup(t), writeBad(t)}); err == nil {
		t.Fatal("a malformed cgroup.procs was accepted")
	}
	if dirs, err := trackedDirs(t.TempDir()); err != nil || dirs != nil {
		t.Fatalf("a pod without a tracking group: %v, %v", dirs, err)
	}
	dirs, err := trackedDirs(podDir(t, 1, a, b))
	if err != nil || len(dirs) != 2 || dirs[0] != a || dirs[1] != b {
		t.Fatalf("trackedDirs = %v, %v", dirs, err)
	}
}

func writeBad(t *testing.T) string {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte("12\nnot-a-pid\n"), 0o644)
	return dir
}

// stop signals the app while it is the pod's, and everything the pod's
// group holds once it is gone.
func TestStopSignalsThePodsProcesses(t *testing.T) {
	app, child := sleeper(t), sleeper(t)
	dir := podDir(t, app.Process.Pid, fakeGroup(t, app.Process.Pid, child.Process.Pid))
	if err := stop(dir, false); err != nil {
		t.Fatal(err)
	}
	if sig := endedBy(t, app); sig != unix.SIGTERM {
		t.Fatalf("the app ended by %v, want SIGTERM", sig)
	}
	if err := unix.Kill(child.Process.Pid, 0); err != nil {
		t.Fatalf("stop without --force reached the app's child while the app lived: %v", err)
	}

	// The app is gone: its leftovers get the signal.
	left := sleeper(t)
	dir = podDir(t, app.Process.Pid, fakeGroup(t, left.Process.Pid))
	if err := stop(dir, false); err != nil {
		t.Fatal(err)
	}
	if sig := endedBy(t, left); sig != unix.SIGTERM {
		t.Fatalf("the leftover ended by %v, want SIGTERM", sig)
	}

	// A recorded pid outside the pod's group (reused by another process)
	// is left alone.
	stranger, member := sleeper(t), sleeper(t)
	dir = podDir(t, stranger.Process.Pid, fakeGroup(t, member.Process.Pid))
	if err := stop(dir, false); err != nil {
		t.Fatal(err)
	}
	if sig := endedBy(t, member); sig != unix.SIGTERM {
		t.Fatalf("the pod's process ended by %v, want SIGTERM", sig)
	}
	if err := unix.Kill(stranger.Process.Pid, 0); err != nil {
		t.Fatalf("stop signalled a process outside the pod: %v", err)
	}

	// Without a tracking group, the app alone.
	solo := sleeper(t)
	if err := stop(podDir(t, solo.Process.Pid), true); err != nil {
		t.Fatal(err)
	}
	if sig := endedBy(t, solo); sig != unix.SIGKILL {
		t.Fatalf("stop --force: the app ended by %v, want SIGKILL", sig)
	}
}

func TestSignalTrackedKillsEveryMember(t *testing.T) {
	a, b := sleeper(t), sleeper(t)
	if err := signalTracked([]string{fakeGroup(t, a.Process.Pid), fakeGroup(t, b.Process.Pid)}, unix.SIGKILL, false); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*exec.Cmd{a, b} {
		if sig := endedBy(t, c); sig != unix.SIGKILL {
			t.Fatalf("ended by %v, want SIGKILL", sig)
		}
	}
}

// reapOrphans reaps exited children, except the app's, which its waiter
// reaps.
func TestReapOrphans(t *testing.T) {
	start := func() int {
		cmd := exec.Command("true")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd.Process.Pid
	}
	zombie := func(pid int) bool {
		data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return false
		}
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		return i > 0 && i+2 < len(s) && s[i+2] == 'Z'
	}
	waitZombie := func(pid int) {
		for deadline := time.Now().Add(5 * time.Second); !zombie(pid) && time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
		}
		if !zombie(pid) {
			t.Fatalf("%d did not exit", pid)
		}
	}
	main, orphan := start(), start()
	waitZombie(main)
	waitZombie(orphan)
	reapOrphans(-1) // nobody's main: both are reaped
	if zombie(main) || zombie(orphan) {
		t.Fatal("exited children were not reaped")
	}
	main = start()
	waitZombie(main)
	reapOrphans(main)
	if !zombie(main) {
		t.Fatal("the app was reaped behind its waiter's back")
	}
	var ws unix.WaitStatus
	if pid, err := unix.Wait4(main, &ws, 0, nil); err != nil || pid != main {
		t.Fatalf("the app's waiter could not reap it: %d %v", pid, err)
	}
}
