package pod

import (
	"os"
	"strconv"

	"github.com/orbit-containers/orbit/stage2"
)

// LowerOOMFloor lets apps have a negative os/linux/oom-score-adj inside a
// container that lacks CAP_SYS_RESOURCE (systemd-nspawn drops it): the
// calling stage1 process, still privileged, lowers its own oom_score_adj to
// the lowest the apps ask for. That sets the floor (oom_score_adj_min)
// every process it starts inherits, down to which an unprivileged launcher
// may then set its app's value. Apps that ask for nothing are given 0, so
// only those that asked run below it. A failure leaves things as they were:
// the launcher then warns that it could not set the value.
func LowerOOMFloor(apps []*stage2.App) {
	lowest := 0
	for _, a := range apps {
		if a.OOMScoreAdj != nil && *a.OOMScoreAdj < lowest {
			lowest = *a.OOMScoreAdj
		}
	}
	if lowest == 0 {
		return
	}
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(lowest)), 0); err != nil {
		return
	}
	for _, a := range apps {
		if a.OOMScoreAdj == nil {
			zero := 0
			a.OOMScoreAdj = &zero
		}
	}
}
