package pod

import (
	"fmt"

	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/cgroup"
	"github.com/orbit-containers/orbit/stage2"
)

// Security is what stage1 was told to switch off (rkt's
// --disable-capabilities-restriction, --disable-paths, --disable-seccomp).
type Security struct {
	AllCapabilities    bool
	NoPathRestrictions bool
	NoSeccomp          bool
}

// DefaultMaskedPaths are hidden from apps unless paths are disabled: kernel
// memory, keys and scheduler internals that tell an app about the host.
func DefaultMaskedPaths() []string {
	return []string{"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/latency_stats", "/proc/acpi", "/proc/scsi", "/sys/firmware"}
}

// DefaultReadOnlyPaths are read-only to apps unless paths are disabled:
// the kernel's writable knobs.
func DefaultReadOnlyPaths() []string {
	return []string{"/proc/sysrq-trigger", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"}
}

// ApplyIsolators sets the app's security and resource fields from the appc
// isolators of its runtime app, over orbit's defaults: a restricted
// capability set, the default seccomp deny list and the masked and
// read-only paths. It returns the app's cgroup limits.
func ApplyIsolators(app *stage2.App, isolators types.Isolators, sec Security) (cgroup.Limits, error) {
	var lim cgroup.Limits
	var capsRetain, capsRemove []string
	haveCaps := false
	var seccomp *stage2.Seccomp
	for _, iso := range isolators {
		switch v := iso.Value().(type) {
		case *types.ResourceMemory:
			if l := v.Limit(); l != nil {
				n := l.Value()
				lim.MemoryBytes = &n
			}
		case *types.ResourceCPU:
			if l := v.Limit(); l != nil {
				n := l.MilliValue()
				lim.CPUMilli = &n
			}
		case *types.LinuxCPUShares:
			n := uint64(*v)
			lim.CPUShares = &n
		case *types.LinuxOOMScoreAdj:
			n := int(*v)
			app.OOMScoreAdj = &n
		case *types.LinuxNoNewPrivileges:
			app.NoNewPrivileges = bool(*v)
		case *types.LinuxCapabilitiesRetainSet:
			haveCaps = true
			capsRetain = capNames(v.Set())
		case *types.LinuxCapabilitiesRevokeSet:
			haveCaps = true
			capsRemove = capNames(v.Set())
		case *types.LinuxSeccompRetainSet:
			s, err := stage2.SeccompFromSet(stage2.SeccompRetain, syscallNames(v.Set()), string(v.Errno()))
			if err != nil {
				return lim, fmt.Errorf("app %s: %s: %w", app.Name, iso.Name, err)
			}
			seccomp = s
		case *types.LinuxSeccompRemoveSet:
			s, err := stage2.SeccompFromSet(stage2.SeccompRemove, syscallNames(v.Set()), string(v.Errno()))
			if err != nil {
				return lim, fmt.Errorf("app %s: %s: %w", app.Name, iso.Name, err)
			}
			seccomp = s
		case nil:
			return lim, fmt.Errorf("app %s: isolator %s: unparsed value: %w", app.Name, iso.Name, errdefs.ErrInvalid)
		}
	}
	if !sec.AllCapabilities {
		caps := stage2.DefaultCapabilities()
		if haveCaps {
			var err error
			if len(capsRetain) > 0 {
				caps, err = stage2.CapabilitiesFromSets(capsRetain, nil)
			} else {
				caps, err = stage2.CapabilitiesFromSets(nil, capsRemove)
			}
			if err != nil {
				return lim, fmt.Errorf("app %s: %w", app.Name, err)
			}
		}
		app.Capabilities = &stage2.Capabilities{Retain: caps}
	}
	if !sec.NoSeccomp {
		if seccomp == nil {
			seccomp = &stage2.Seccomp{Mode: stage2.SeccompRemove, Syscalls: stage2.DefaultSeccompRemoveSet()}
		}
		app.Seccomp = seccomp
	}
	if !sec.NoPathRestrictions {
		app.MaskedPaths = append(app.MaskedPaths, DefaultMaskedPaths()...)
		app.ReadOnlyPaths = append(app.ReadOnlyPaths, DefaultReadOnlyPaths()...)
	}
	return lim, nil
}

func capNames(in []types.LinuxCapability) []string {
	out := make([]string, len(in))
	for i, c := range in {
		out[i] = string(c)
	}
	return out
}

func syscallNames(in []types.LinuxSeccompEntry) []string {
	out := make([]string, len(in))
	for i, c := range in {
		out[i] = string(c)
	}
	return out
}
