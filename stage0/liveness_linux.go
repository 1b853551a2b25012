package stage0

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/orbit-containers/orbit/stage1/cgroup"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// Liveness (see Documentation/design.md, "Pods"): a pod in run is running
// while its lock is held (stage1's run process, and systemd-nspawn, which
// inherits the lock) or while any of its processes lives. The second test
// covers a pod whose stage1 and nspawn were killed: the container's own
// processes never hold the lock, because the lock is a descriptor of the
// pod directory on the host, and a directory descriptor in the container
// would let an app that can read /proc/1/fd walk out to the host's root.

// userHZ is the unit of /proc/<pid>/stat's start time: USER_HZ, 100 on
// every architecture Linux runs Go on.
const userHZ = 100

// processesLive reports whether a process of the pod lives: any process in
// the pod's recorded cgroups, or, for a pod without them, the pod's
// recorded PID when that is still the pod's: the init of a PID namespace
// that started before the pid file was written (a reused PID belongs to a
// later process). When it cannot tell, it says yes, so that nothing takes a
// live pod for an exited one.
func processesLive(podDir string) bool {
	if data, err := os.ReadFile(contract.CgroupsFile(podDir)); err == nil {
		live, err := cgroup.Populated(strings.Fields(string(data)))
		return live || err != nil
	}
	pidFile := contract.PidFile(podDir)
	fi, err := os.Stat(pidFile)
	if err != nil {
		return false
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		return false
	}
	pid, err := parsePid(data)
	if err != nil {
		return false
	}
	nsInit, started, err := processIdentity(pid)
	if err != nil {
		return false // gone
	}
	return nsInit && !started.After(fi.ModTime().Add(time.Second))
}

// processIdentity tells whether pid is the init (PID 1) of a PID namespace
// of its own and when it started.
func processIdentity(pid int) (nsInit bool, started time.Time, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return false, time.Time{}, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			nsInit = len(f) > 1 && f[len(f)-1] == "1"
		}
		if rest, ok := strings.CutPrefix(line, "State:"); ok && strings.HasPrefix(strings.TrimSpace(rest), "Z") {
			return false, time.Time{}, fmt.Errorf("process %d is a zombie", pid)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false, time.Time{}, err
	}
	ticks, err := statStartTime(string(stat))
	if err != nil {
		return false, time.Time{}, fmt.Errorf("process %d: %w", pid, err)
	}
	boot, err := bootTime()
	if err != nil {
		return false, time.Time{}, err
	}
	return nsInit, boot.Add(time.Duration(ticks) * time.Second / userHZ), nil
}

// statStartTime reads the start time (field 22, in clock ticks since boot)
// from a /proc/<pid>/stat line; the command name, in parentheses, may hold
// anything, so fields are counted from its closing parenthesis.
func statStartTime(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 {
		return 0, fmt.Errorf("malformed stat %q", stat)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

func bootTime() (time.Time, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "btime "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(rest), 10, 64)
			if err != nil {
				return time.Time{}, fmt.Errorf("/proc/stat btime %q: %w", rest, err)
			}
			return time.Unix(n, 0), nil
		}
	}
	return time.Time{}, fmt.Errorf("/proc/stat has no btime")
}
