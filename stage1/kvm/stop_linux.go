package kvm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/network"
	"github.com/orbit-containers/orbit/stage1/pod"
)

// Stop is the stop entrypoint: SIGTERM to the run entrypoint's process,
// which asks the guest's supervisor over the control port to stop the apps
// in order; with --force, forceSignal, and the guest kills every process of
// the pod at once, so the supervisor still records their statuses (137).
// A VM whose run entrypoint is gone is killed.
func Stop(args []string) int { return pod.Main("stage1 kvm stop", args, stop) }

func stop(args []string) (int, error) {
	a, err := contract.ParseStop(args)
	if err != nil {
		return 0, err
	}
	sig := unix.SIGTERM
	if a.Force {
		sig = forceSignal
	}
	if pid, ok := podProcess(runPidFile, a.UUID); ok {
		return 0, ignoreGone(unix.Kill(pid, sig))
	}
	if pid, ok := podProcess(qemuPidFile, a.UUID); ok {
		return 0, ignoreGone(unix.Kill(pid, unix.SIGKILL))
	}
	return 0, nil
}

func ignoreGone(err error) error {
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

// podProcess reads a PID the flavour recorded in the pod directory (the
// working directory) and reports it only while that process is still the
// pod's: its command line names the pod's UUID (the run entrypoint's last
// argument; QEMU's paths into the pod directory), so a later process that
// reused the PID is never signalled.
func podProcess(file, uuid string) (int, bool) {
	data, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return 0, false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || uuid == "" || !bytes.Contains(cmdline, []byte(uuid)) {
		return 0, false
	}
	return pid, true
}

// GC is the gc entrypoint: it kills a VM that outlived its run entrypoint
// (it cannot: QEMU dies with it, but a recorded PID is cheap to check) and
// undoes the pod's networks.
func GC(args []string) int { return pod.Main("stage1 kvm gc", args, gc) }

func gc(args []string) (int, error) {
	a, err := contract.ParseGC(args)
	if err != nil {
		return 0, err
	}
	if pid, ok := podProcess(qemuPidFile, a.UUID); ok {
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	if err := network.Teardown(context.Background(), "."); err != nil {
		return 0, fmt.Errorf("undoing the pod's networks: %w", err)
	}
	return 0, nil
}
