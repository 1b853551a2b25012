package nspawn

import (
	"fmt"

	"github.com/orbit-containers/orbit/stage1/cgroup"
)

// cgroupEnv is what systemd-nspawn's environment must add for the pod's
// cgroups. systemd-nspawn picks the container's cgroup layout from the
// systemd version it finds in the container's root, and the stage1 root
// holds no systemd: on a host with only the unified hierarchy it would then
// mount a legacy tree (a tmpfs holding a v1 name=systemd hierarchy made for
// the pod) and hide the cgroup2 tree the supervisor puts each app's limits
// in. The host's layout is the pod's: unified there means unified here.
func cgroupEnv() []string {
	if l, err := cgroup.Detect(); err == nil && l.Mode == cgroup.Unified {
		return []string{"SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1"}
	}
	return nil
}

// checkDelegated fails, before the pod starts, when an app has a limit
// whose controller the caller's cgroup cannot give the pod.
func checkDelegated(l *cgroup.Layout, pl *plan) error {
	for _, a := range pl.config.Apps {
		if err := l.CheckDelegated(a.Limits); err != nil {
			return fmt.Errorf("app %s: %w", a.App.Name, err)
		}
	}
	return nil
}
