package nspawn

import (
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/pod"
	"github.com/orbit-containers/orbit/stage1/supervisor"
)

// Paths inside the stage1 rootfs that another flavour running the same
// supervisor over the same rootfs (kvm) shares with this one.
const (
	// PodDataDir is the stage1 rootfs's directory of what stage1 writes
	// for the supervisor.
	PodDataDir = podDataDir
	// SupervisorConfig is the supervisor's configuration file.
	SupervisorConfig = supervisorConfig
)

// Bind is a host path that must appear at Target inside the stage1 rootfs
// when the pod runs.
type Bind struct {
	Source, Target string
	ReadOnly       bool
}

// PlanGuest plans a pod exactly as this flavour runs it, for a flavour
// that runs the same supervisor over the same stage1 rootfs in another
// kind of sandbox (the kvm flavour's VM): the supervisor's configuration,
// with no pod cgroup of the host's (the caller gives its own parent), and
// the host paths to bring into the rootfs.
func PlanGuest(p *pod.Pod, flags *contract.RunOptions, hostname string) (*supervisor.Config, []Bind, error) {
	pl, err := planPod(p, flags, hostname)
	if err != nil {
		return nil, nil, err
	}
	binds := make([]Bind, len(pl.binds))
	for i, b := range pl.binds {
		binds[i] = Bind{Source: b.source, Target: b.target, ReadOnly: b.readOnly}
	}
	return &pl.config, binds, nil
}

// SetupNetwork gives the pod the networks the run flags ask for, as this
// flavour does (and turns DNS servers a network gives into the pod's
// resolv.conf unless a --dns flag chose one, updating flags), and returns
// the path of its network namespace ("" for the host's network).
func SetupNetwork(p *pod.Pod, flags *contract.RunOptions) (string, error) {
	return setupNetwork(p, flags)
}

// TeardownNetwork undoes the pod's networks once it has ended.
func TeardownNetwork(p *pod.Pod) { teardownNetwork(p) }
