// Package cgroup places a pod's apps in control groups and enforces their
// resource isolators (appc resource/memory, resource/cpu, os/linux/cpu-shares)
// on cgroup v1, cgroup v2 (unified) and hybrid hosts.
//
// The host's layout is read from /proc/self/mountinfo, never assumed: a
// Layout records every v1 hierarchy with the controllers bound to it and the
// cgroup2 mount, if any. Paths given to Create, Remove and Exists are
// relative to the root of each hierarchy as the calling process sees it (for
// a pod, "orbit/<uuid>/<app>").
//
// Which hierarchy enforces a limit follows from where its controller is
// bound: a controller is attached either to a v1 hierarchy or to the unified
// one, never both, so on a hybrid host (v1 controllers plus a cgroup2 mount
// with none enabled) limits land in v1 while the unified tree is still used
// to track and kill the group's processes (cgroup.kill).
package cgroup

import (
	"fmt"
	"path"
	"strings"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// Limits are the resource limits of one group. A nil field leaves the
// kernel's default (no limit).
type Limits struct {
	// MemoryBytes is the hard memory limit (v1 memory.limit_in_bytes, v2
	// memory.max). Exceeding it gets a process of the group OOM-killed.
	MemoryBytes *int64 `json:"memoryBytes,omitempty"`
	// CPUMilli is the CPU bandwidth limit in thousandths of a CPU (1000 is
	// one CPU): the CFS quota over a 100ms period (v1 cpu.cfs_quota_us, v2
	// cpu.max). Values below 10 are raised to 10, the kernel's 1ms minimum.
	CPUMilli *int64 `json:"cpuMilli,omitempty"`
	// CPUShares is the relative CPU weight in v1 terms, 2 to 262144 (1024
	// is the default); on v2 it is converted to cpu.weight (1 to 10000).
	CPUShares *uint64 `json:"cpuShares,omitempty"`
	// PidsMax caps the number of tasks in the group (pids.max).
	PidsMax *int64 `json:"pidsMax,omitempty"`
}

// Kernel bounds of the values Limits maps to.
const (
	cfsPeriodUS  = 100000 // the CFS period orbit uses, 100ms
	minCFSQuota  = 1000   // the kernel refuses quotas below 1ms
	minCPUShares = 2
	maxCPUShares = 262144
)

// Validate checks that every set limit is within what the kernel accepts.
func (l Limits) Validate() error {
	if l.MemoryBytes != nil && *l.MemoryBytes <= 0 {
		return fmt.Errorf("memory limit %d: must be positive: %w", *l.MemoryBytes, errdefs.ErrInvalid)
	}
	if l.CPUMilli != nil && *l.CPUMilli <= 0 {
		return fmt.Errorf("cpu limit %dm: must be positive: %w", *l.CPUMilli, errdefs.ErrInvalid)
	}
	if l.CPUMilli != nil && *l.CPUMilli > 1<<40 {
		return fmt.Errorf("cpu limit %dm: too large: %w", *l.CPUMilli, errdefs.ErrInvalid)
	}
	if l.CPUShares != nil && (*l.CPUShares < minCPUShares || *l.CPUShares > maxCPUShares) {
		return fmt.Errorf("cpu shares %d: must be between %d and %d: %w", *l.CPUShares, minCPUShares, maxCPUShares, errdefs.ErrInvalid)
	}
	if l.PidsMax != nil && *l.PidsMax <= 0 {
		return fmt.Errorf("pids limit %d: must be positive: %w", *l.PidsMax, errdefs.ErrInvalid)
	}
	return nil
}

// controllers returns the controllers the limits need, in a fixed order.
func (l Limits) controllers() []string {
	var c []string
	if l.MemoryBytes != nil {
		c = append(c, "memory")
	}
	if l.CPUMilli != nil || l.CPUShares != nil {
		c = append(c, "cpu")
	}
	if l.PidsMax != nil {
		c = append(c, "pids")
	}
	return c
}

// cfsQuota is the quota in microseconds per cfsPeriodUS for a CPU limit.
func cfsQuota(milli int64) int64 {
	q := milli * cfsPeriodUS / 1000
	if q < minCFSQuota {
		q = minCFSQuota
	}
	return q
}

// cpuWeight maps v1 cpu.shares [2, 262144] linearly onto v2 cpu.weight
// [1, 10000], so the default 1024 lands near the v2 default of 100 (39; the
// two scales do not share a midpoint) and the bounds map onto each other.
func cpuWeight(shares uint64) uint64 {
	if shares < minCPUShares {
		shares = minCPUShares
	}
	if shares > maxCPUShares {
		shares = maxCPUShares
	}
	return 1 + (shares-minCPUShares)*9999/(maxCPUShares-minCPUShares)
}

// cleanPath checks a group path: relative, no "..", no empty or dot
// components, not the root itself. It returns it in canonical form.
func cleanPath(p string) (string, error) {
	if p == "" || strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("cgroup path %q: must be relative and not empty: %w", p, errdefs.ErrInvalid)
	}
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			return "", fmt.Errorf("cgroup path %q: bad component %q: %w", p, c, errdefs.ErrInvalid)
		}
		if strings.ContainsAny(c, "\x00\n") {
			return "", fmt.Errorf("cgroup path %q: control character: %w", p, errdefs.ErrInvalid)
		}
	}
	return path.Clean(p), nil
}
