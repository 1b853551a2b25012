package fly

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/stage1/cgroup"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/pod"
)

// Every process of a fly pod is tracked twice, so that the pod ends with
// all of them:
//
//   - The run entrypoint is a child subreaper (PR_SET_CHILD_SUBREAPER): what
//     the app's processes leave behind is re-parented to it rather than to
//     the host's init, and run kills it all when the app ends.
//   - The app is started in a cgroup of its own, orbit/<uuid> below run's
//     cgroup in the cgroup2 tree (in each v1 hierarchy on a host without
//     one), used only to find the pod's processes
//     (no limits). Its directories are recorded in the pod's contract.CgroupsFile,
//     so that stop finds the processes even after run was killed, and gc
//     removes the group.

// killTimeout bounds how long stop --force and run wait for the pod's
// processes to end after SIGKILL.
const killTimeout = 10 * time.Second

// podCgroup is the pod's tracking group, below run's own cgroup.
func podCgroup(uuid string) string { return "orbit/" + uuid }

// trackingGroup is the pod's tracking cgroup and the layout it is in.
type trackingGroup struct {
	layout *cgroup.Layout
	group  *cgroup.Group
}

// makeTrackingGroup makes the pod's tracking cgroup and records it. A host
// without usable cgroups gets none (nil): the fly flavour needs no cgroup,
// and the subreaper still tracks the pod while run lives.
func makeTrackingGroup(p *pod.Pod) *trackingGroup {
	l, err := cgroup.Detect()
	if err == nil {
		l, err = l.Nested()
	}
	if err != nil {
		return nil
	}
	if l.Unified != nil {
		// One hierarchy is enough to find the pod's processes. The app is
		// cloned straight into a cgroup2 group, while joining each v1
		// hierarchy means moving the starting thread in and out, a cgroup
		// migration (milliseconds each, under the kernel's global
		// threadgroup lock) per hierarchy and direction.
		l.V1 = nil
	}
	g, err := l.Create(podCgroup(p.UUID), cgroup.Limits{})
	if err != nil {
		return nil
	}
	// Recorded before anything runs in it, so stop and gc always find it.
	data := []byte(strings.Join(g.Dirs(), "\n") + "\n")
	if err := atomicfile.Replace(contract.CgroupsFile(p.Dir), data, 0o644); err != nil {
		_ = l.RemoveDirs(g.Dirs())
		return nil
	}
	return &trackingGroup{layout: l, group: g}
}

// remove kills what is left in the group and removes it; gc has nothing
// left to do then.
func (t *trackingGroup) remove() error {
	return removeGroups(t.layout, t.group.Dirs())
}

// removeGroups removes the pod's groups dirs, killing what is in them, and
// the "orbit" directory the pods' groups share once the last is gone
// (rmdir fails while another pod's group is in it).
func removeGroups(l *cgroup.Layout, dirs []string) error {
	if err := l.RemoveDirs(dirs); err != nil {
		return err
	}
	for _, d := range dirs {
		if parent := filepath.Dir(d); filepath.Base(parent) == "orbit" {
			_ = unix.Rmdir(parent)
		}
	}
	return nil
}

// trackedDirs reads the pod's recorded cgroup directories (none when the
// pod has no tracking group). dir is the pod directory.
func trackedDirs(dir string) ([]string, error) {
	data, err := os.ReadFile(contract.CgroupsFile(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(data)), nil
}

// trackedProcs lists the processes in the recorded groups, without
// duplicates. A group that is gone holds nothing.
func trackedProcs(dirs []string) ([]int, error) {
	var pids []int
	for _, d := range dirs {
		data, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, f := range strings.Fields(string(data)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("%s/cgroup.procs: %q is not a pid", d, f)
			}
			if pid > 0 && !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	slices.Sort(pids)
	return pids, nil
}

// signalTracked sends sig to every process in the recorded groups. With
// wait, it repeats until the groups are empty (a process may fork while it
// is being killed), for at most killTimeout.
func signalTracked(dirs []string, sig unix.Signal, wait bool) error {
	deadline := time.Now().Add(killTimeout)
	for pause := time.Millisecond; ; pause = min(2*pause, 100*time.Millisecond) {
		pids, err := trackedProcs(dirs)
		if err != nil {
			return err
		}
		for _, pid := range pids {
			if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
				return fmt.Errorf("signalling %d: %w", pid, err)
			}
		}
		if !wait || len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d processes of the pod still alive after %s", len(pids), killTimeout)
		}
		time.Sleep(pause)
	}
}

// becomeSubreaper makes the calling process the subreaper of everything it
// starts.
func becomeSubreaper() error {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("becoming the pod's subreaper: %w", err)
	}
	return nil
}

// reapOrphans reaps every exited child except main, which its own waiter
// reaps; it returns when no other exited child is left. Orphans of the
// app are re-parented to run, the subreaper, and would stay zombies
// otherwise.
func reapOrphans(main int) {
	for {
		var info unix.Siginfo
		// WNOWAIT: look before reaping, so main is left to its waiter.
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if err != nil {
			return
		}
		pid := siginfoPid(&info)
		if pid == 0 || pid == main {
			return
		}
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err != nil {
			return
		}
	}
}

// killOrphans kills and reaps every remaining child of run (the app has
// been reaped: what is left are processes it left behind, re-parented to
// the subreaper), until none is left or killTimeout passes.
func killOrphans() error {
	deadline := time.Now().Add(killTimeout)
	for {
		kids := ownChildren()
		if len(kids) == 0 {
			return nil
		}
		for _, pid := range kids {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d processes of the pod still alive after %s", len(kids), killTimeout)
		}
		// Reap what died; their own children come to run in turn.
		for {
			var ws unix.WaitStatus
			pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
			if err != nil || pid <= 0 {
				break
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ownChildren lists the children of every thread of the calling process.
func ownChildren() []int {
	lists, _ := filepath.Glob("/proc/self/task/*/children")
	var out []int
	for _, l := range lists {
		data, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// siginfoPid is si_pid of a SIGCHLD siginfo filled by waitid(2): the first
// field of the union, which follows si_signo, si_errno and si_code aligned
// to a pointer.
func siginfoPid(info *unix.Siginfo) int {
	align := unsafe.Sizeof(uintptr(0))
	off := (3*unsafe.Sizeof(int32(0)) + align - 1) &^ (align - 1)
	return int(*(*int32)(unsafe.Add(unsafe.Pointer(info), off)))
}
