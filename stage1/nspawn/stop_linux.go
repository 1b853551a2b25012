package nspawn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/stage1/cgroup"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/network"
	"github.com/orbit-containers/orbit/stage1/pod"
)

// GC is the gc entrypoint: it removes the pod's cgroups, killing anything
// left in them, then undoes the pod's networks (CNI DEL for each, and the
// network namespace) from what the pod directory records.
func GC(args []string) int { return pod.Main("stage1 nspawn gc", args, gc) }

func gc(args []string) (int, error) {
	a, err := contract.ParseGC(args)
	if err != nil {
		return 0, err
	}
	code, err := gcCgroups(a)
	// After the cgroups: nothing of the pod runs in the namespace any more.
	if nerr := network.Teardown(context.Background(), "."); nerr != nil {
		err = errors.Join(err, fmt.Errorf("undoing the pod's networks: %w", nerr))
	}
	return code, err
}

func gcCgroups(a *contract.GCArgs) (int, error) {
	l, err := cgroup.Detect()
	if err != nil {
		return 0, nil // no cgroups, nothing to remove
	}
	// gc runs in the pod directory; pods from before the cgroups file
	// have their group at the root of each hierarchy.
	if data, rerr := os.ReadFile(contract.CgroupsFile("")); rerr == nil {
		dirs := strings.Fields(string(data))
		err = l.RemoveDirs(dirs)
		// The "orbit" directory the pods' groups share goes with the last
		// of them (rmdir fails while another pod's group is in it).
		for _, d := range dirs {
			if parent := filepath.Dir(d); filepath.Base(parent) == "orbit" {
				_ = unix.Rmdir(parent)
			}
		}
	} else {
		err = l.Remove(podCgroup(a.UUID))
	}
	return 0, err
}

// Stop is the stop entrypoint: SIGTERM to systemd-nspawn, which asks the
// supervisor to stop the apps in order; with --force, SIGKILL to every app,
// so the supervisor still records their statuses (137) and ends the pod.
// A pod whose supervisor has no apps left is ended by killing its PID 1.
// When nspawn is gone (killed) and the container lives on, the supervisor
// gets the SIGTERM itself. A recorded PID is signalled only while it is
// still the pod's process (see isPodNspawn and isPodInit), never a later
// process that reused it.
func Stop(args []string) int { return pod.Main("stage1 nspawn stop", args, stop) }

func stop(args []string) (int, error) {
	a, err := contract.ParseStop(args)
	if err != nil {
		return 0, err
	}
	uuid := a.UUID
	_, err = os.Stat(contract.CgroupsFile(""))
	withCgroups := err == nil
	nspawn, nerr := readPid(nspawnPidFile)
	nspawnLives := nerr == nil && isPodNspawn(nspawn, uuid, withCgroups)
	pid1, perr := readPid(contract.PidFile(""))
	pid1Lives := perr == nil && isPodInit(pid1, uuid, withCgroups)
	switch {
	case !a.Force && nspawnLives:
		return 0, kill(nspawn, unix.SIGTERM)
	case !a.Force && pid1Lives:
		return 0, kill(pid1, unix.SIGTERM)
	case !pid1Lives && nspawnLives:
		return 0, kill(nspawn, unix.SIGKILL)
	case !pid1Lives:
		return 0, errors.New("no process of the pod is left to signal")
	}
	apps := children(pid1)
	if len(apps) == 0 {
		return 0, kill(pid1, unix.SIGKILL)
	}
	// Every app gets its SIGKILL, whichever fails; the first failure is
	// reported.
	var first error
	for _, app := range apps {
		if err := kill(app, unix.SIGKILL); err != nil && first == nil {
			first = err
		}
	}
	return 0, first
}

func kill(pid int, sig unix.Signal) error {
	if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("signalling %d: %w", pid, err)
	}
	return nil
}

// children lists the children of every thread of a process.
func children(pid int) []int {
	lists, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, l := range lists {
		data, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

func readPid(file string) (int, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, fmt.Errorf("the pod has not recorded its %s: %w", file, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad %s file %q", file, data)
	}
	return n, nil
}
