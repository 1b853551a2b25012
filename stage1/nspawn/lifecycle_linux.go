package nspawn

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/stage1/cgroup"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/pod"
)

// stopSignals are the signals that ask `orbit run` for an orderly stop of
// the pod: every signal that would otherwise end this process (the Go
// runtime's default for it when sent with kill(2)), SIGKILL and SIGSTOP
// excepted, which cannot be caught. Each becomes SIGTERM to systemd-nspawn,
// which turns it into --kill-signal for the supervisor: apps stop in order,
// their statuses are recorded, and run exits with the pod's status. Passing
// any of them on as such would end nspawn (it handles only SIGTERM and
// SIGINT) and orphan the container. SIGPIPE is caught apart and dropped (see
// ignoredSignals).
func stopSignals() []os.Signal {
	return []os.Signal{
		unix.SIGHUP, unix.SIGINT, unix.SIGTERM, unix.SIGQUIT,
		unix.SIGABRT, unix.SIGILL, unix.SIGTRAP, unix.SIGBUS, unix.SIGFPE,
		unix.SIGSEGV, unix.SIGSTKFLT, unix.SIGSYS,
	}
}

// notIgnored drops from sigs those this process was started with ignored:
// under nohup, SIGHUP stays without effect, and a background job of a
// shell keeps ignoring SIGINT, rather than stop the pod.
func notIgnored(sigs []os.Signal) []os.Signal {
	var out []os.Signal
	for _, s := range sigs {
		if !signal.Ignored(s) {
			out = append(out, s)
		}
	}
	return out
}

// ignoredSignals are caught and dropped: SIGPIPE would end run when its
// standard output or error is a pipe whose reader left, while the pod goes
// on writing there (a write then fails with EPIPE instead). They are
// caught, not ignored, because an ignored disposition would pass on to
// nspawn and the pod through exec.
func ignoredSignals() []os.Signal { return []os.Signal{unix.SIGPIPE} }

// alivePoll is how often run looks whether the pod's processes are gone
// once systemd-nspawn has ended.
const alivePoll = 100 * time.Millisecond

// podAlive reports whether a process of the pod lives: one in the pod's
// cgroups, or, without them, the container's PID 1 recorded in the pid
// file. When it cannot tell it says yes.
func podAlive(p *pod.Pod) bool {
	if data, err := os.ReadFile(contract.CgroupsFile(p.Dir)); err == nil {
		live, err := cgroup.Populated(strings.Fields(string(data)))
		return live || err != nil
	}
	pid1, err := readPid(contract.PidFile(p.Dir))
	return err == nil && isPodInit(pid1, p.UUID, false)
}

// isPodInit reports whether pid is the pod's PID 1: the init of a PID
// namespace, in the pod's cgroup when the pod has one (withCgroups).
func isPodInit(pid int, uuid string, withCgroups bool) bool {
	if inner, err := innerPid(pid); err != nil || inner != 1 {
		return false
	}
	return !withCgroups || inPodCgroup(pid, uuid)
}

// isPodNspawn reports whether pid is the pod's systemd-nspawn, and not a
// later process that got its PID: nspawn runs in the pod's cgroup, or,
// without one, names the pod's machine on its command line.
func isPodNspawn(pid int, uuid string, withCgroups bool) bool {
	if withCgroups {
		return inPodCgroup(pid, uuid)
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(cmdline), "\x00--machine=orbit-"+uuid+"\x00")
}

// inPodCgroup reports whether pid is in the pod's cgroup (or below it) in
// some hierarchy.
func inPodCgroup(pid int, uuid string) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return false
	}
	want := "/" + podCgroup(uuid)
	for _, line := range strings.Split(string(data), "\n") {
		// hierarchy-ID:controllers:path
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && (strings.HasSuffix(parts[2], want) || strings.Contains(parts[2], want+"/")) {
			return true
		}
	}
	return false
}

// waitPodGone returns once no process of the pod is left. systemd-nspawn
// has ended; when it was killed (killed set) the container may live on:
// its supervisor is asked to stop the pod (it also gets SIGTERM from the
// kernel when nspawn dies), and so again on every stop signal meanwhile.
// The pod lock stays held until then, so the pod is never seen exited
// while a process of it lives.
func waitPodGone(p *pod.Pod, killed bool, sigs <-chan os.Signal) {
	stopSupervisor := func() {
		if pid1, err := readPid(contract.PidFile(p.Dir)); err == nil && isPodInit(pid1, p.UUID, hasCgroups(p)) {
			_ = unix.Kill(pid1, unix.SIGTERM)
		}
	}
	if killed && podAlive(p) {
		stopSupervisor()
	}
	tick := time.NewTicker(alivePoll)
	defer tick.Stop()
	for podAlive(p) {
		select {
		case <-sigs:
			stopSupervisor()
		case <-tick.C:
		}
	}
}

func hasCgroups(p *pod.Pod) bool {
	_, err := os.Stat(contract.CgroupsFile(p.Dir))
	return err == nil
}

// recordPid waits for the container's PID 1 to appear below nspawn and
// records it with write as the pod's pid. It fails when write does, and
// ends quietly when nspawn is gone first.
func recordPid(nspawn int, write func(pid int) error) error {
	for i := 0; ; i++ {
		for _, c := range children(nspawn) {
			if inner, err := innerPid(c); err == nil && inner == 1 {
				if err := write(c); err != nil {
					return fmt.Errorf("recording the pod's pid: %w", err)
				}
				return nil
			}
		}
		if err := unix.Kill(nspawn, 0); err != nil {
			return nil // nspawn is gone
		}
		delay := 20 * time.Millisecond
		if i > 100 {
			delay = 200 * time.Millisecond // a slow start: poll less often
		}
		time.Sleep(delay)
	}
}
