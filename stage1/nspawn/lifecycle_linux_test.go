package nspawn

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/pod"
)

func TestNotIgnored(t *testing.T) {
	signal.Ignore(unix.SIGHUP)
	defer signal.Reset(unix.SIGHUP)
	got := notIgnored([]os.Signal{unix.SIGHUP, unix.SIGTERM})
	if !slices.Equal(got, []os.Signal{unix.SIGTERM}) {
		t.Fatalf("notIgnored = %v, want [SIGTERM]", got)
	}
}

func TestStopSignals(t *testing.T) {
	stop := stopSignals()
	for _, sig := range []unix.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGTERM, unix.SIGQUIT, unix.SIGABRT} {
		if !slices.Contains(stop, os.Signal(sig)) {
			t.Errorf("%v does not stop the pod", sig)
		}
	}
	for _, sig := range []unix.Signal{unix.SIGKILL, unix.SIGSTOP, unix.SIGPIPE, unix.SIGCHLD, unix.SIGWINCH, unix.SIGURG} {
		if slices.Contains(stop, os.Signal(sig)) {
			t.Errorf("%v is taken for a stop request", sig)
		}
	}
	if !slices.Equal(ignoredSignals(), []os.Signal{unix.SIGPIPE}) {
		t.Errorf("ignored signals: %v", ignoredSignals())
	}
}

// startInit starts a process that is the init of a new PID namespace,
// whose child it waits for; the caller kills it.
func startInit(t *testing.T) *exec.Cmd {
	t.Helper()
	needs(t, os.Geteuid() == 0, "root for a PID namespace")
	cmd := exec.Command("/bin/sh", "-c", "sleep 60 & wait")
	cmd.SysProcAttr = &unix.SysProcAttr{Cloneflags: unix.CLONE_NEWPID}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting a PID namespace: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func TestRecordPid(t *testing.T) {
	// A parent whose child is the init of a PID namespace, as nspawn is.
	needs(t, os.Geteuid() == 0, "root for a PID namespace")
	_, err := exec.LookPath("unshare")
	needs(t, err == nil, "util-linux's unshare")
	parent := exec.Command("unshare", "--pid", "--fork", "sleep", "60")
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { parent.Process.Kill(); parent.Wait() }()
	var got int
	if err := recordPid(parent.Process.Pid, func(pid int) error { got = pid; return nil }); err != nil {
		t.Fatal(err)
	}
	if inner, err := innerPid(got); err != nil || inner != 1 {
		t.Fatalf("recorded %d, whose PID inside is %d (%v)", got, inner, err)
	}
	boom := errors.New("disk full")
	err = recordPid(parent.Process.Pid, func(int) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("a failed write gave %v", err)
	}

	// nspawn gone before the pod's PID 1 appeared: nothing to record.
	gone := exec.Command("/bin/true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	if err := recordPid(gone.Process.Pid, func(int) error { t.Error("wrote a pid"); return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestPodAliveWithoutCgroups(t *testing.T) {
	pid1 := startInit(t)
	dir := t.TempDir()
	p := &pod.Pod{Dir: dir, UUID: "0b5a3fd5-0c0e-4f6a-9a55-1d5bd7e0e3a9"}
	if podAlive(p) {
		t.Fatal("a pod without a pid is alive")
	}
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(contract.PidFile(""), itoa(pid1.Process.Pid))
	if !podAlive(p) {
		t.Fatal("the pod's live PID 1 is not seen")
	}
	write(contract.PidFile(""), itoa(os.Getpid())) // alive, but no namespace's init
	if podAlive(p) {
		t.Fatal("a process that is no PID namespace's init counts as the pod's")
	}
	// With cgroups, only their members count.
	cg := filepath.Join(dir, "cg")
	os.MkdirAll(cg, 0o755)
	write("cg/cgroup.procs", "")
	write(contract.CgroupsFile(""), cg+"\n")
	write(contract.PidFile(""), itoa(pid1.Process.Pid))
	if podAlive(p) {
		t.Fatal("empty cgroups, yet alive")
	}
	write("cg/cgroup.procs", "123\n")
	if !podAlive(p) {
		t.Fatal("a process in the pod's cgroup is not seen")
	}
}

func TestIsPodNspawn(t *testing.T) {
	uuid := "0b5a3fd5-0c0e-4f6a-9a55-1d5bd7e0e3a9"
	cmd := exec.Command("/bin/sh", "-c", "sleep 60; true", "x", "--machine=orbit-"+uuid, "y")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if !isPodNspawn(cmd.Process.Pid, uuid, false) {
		t.Error("the process naming the pod's machine is not taken for its nspawn")
	}
	if isPodNspawn(cmd.Process.Pid, "1"+uuid[1:], false) {
		t.Error("another pod's nspawn is taken for this one's")
	}
	if isPodNspawn(os.Getpid(), uuid, false) || isPodNspawn(os.Getpid(), uuid, true) {
		t.Error("an unrelated process is taken for the pod's nspawn")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// needs skips a test whose prerequisite is missing, or fails it under CI.
func needs(t *testing.T, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("needs %s", what)
	}
	t.Skipf("needs %s", what)
}
