package nspawn

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/stage1/cgroup"
)

// GC is the gc entrypoint: it removes the pod's cgroups, killing anything
// left in them.
func GC(args []string) int {
	fs := flag.NewFlagSet("nspawn gc", flag.ContinueOnError)
	fs.Bool("debug", false, "")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "stage1 nspawn gc: want the pod UUID")
		return 254
	}
	l, err := cgroup.Detect()
	if err != nil {
		return 0 // no cgroups, nothing to remove
	}
	// gc runs in the pod directory; pods from before the cgroups file
	// have their group at the root of each hierarchy.
	if data, rerr := os.ReadFile(cgroupsFile); rerr == nil {
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
		err = l.Remove(podCgroup(fs.Arg(0)))
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1 nspawn gc: %v\n", err)
		return 254
	}
	return 0
}

// Stop is the stop entrypoint: SIGTERM to systemd-nspawn, which asks the
// supervisor to stop the apps in order; with --force, SIGKILL to every app,
// so the supervisor still records their statuses (137) and ends the pod.
// A pod whose supervisor has no apps left is ended by killing its PID 1.
// When nspawn is gone (killed) and the container lives on, the supervisor
// gets the SIGTERM itself. A recorded PID is signalled only while it is
// still the pod's process (see isPodNspawn and isPodInit), never a later
// process that reused it.
func Stop(args []string) int {
	fs := flag.NewFlagSet("nspawn stop", flag.ContinueOnError)
	force := fs.Bool("force", false, "")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "stage1 nspawn stop: want [--force] and the pod UUID")
		return 254
	}
	uuid := fs.Arg(0)
	_, err := os.Stat(cgroupsFile)
	withCgroups := err == nil
	nspawn, nerr := readPid(nspawnPidFile)
	nspawnLives := nerr == nil && isPodNspawn(nspawn, uuid, withCgroups)
	pid1, perr := readPid("pid")
	pid1Lives := perr == nil && isPodInit(pid1, uuid, withCgroups)
	switch {
	case !*force && nspawnLives:
		return kill(nspawn, unix.SIGTERM)
	case !*force && pid1Lives:
		return kill(pid1, unix.SIGTERM)
	case !pid1Lives && nspawnLives:
		return kill(nspawn, unix.SIGKILL)
	case !pid1Lives:
		fmt.Fprintln(os.Stderr, "stage1 nspawn stop: no process of the pod is left to signal")
		return 254
	}
	apps := children(pid1)
	if len(apps) == 0 {
		return kill(pid1, unix.SIGKILL)
	}
	code := 0
	for _, app := range apps {
		if c := kill(app, unix.SIGKILL); c != 0 {
			code = c
		}
	}
	return code
}

func kill(pid int, sig unix.Signal) int {
	if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		fmt.Fprintf(os.Stderr, "stage1 nspawn stop: signalling %d: %v\n", pid, err)
		return 254
	}
	return 0
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
