package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage0"
)

// isolators turns the resource and security flags of one app into appc
// isolators, validated by the appc types themselves.
func (f appFlags) isolators() (types.Isolators, error) {
	var out types.Isolators
	bad := func(flag, val string, err error) error {
		return fmt.Errorf("--%s=%q: %w: %w", flag, val, err, errdefs.ErrInvalid)
	}
	if f.memory != "" {
		if _, err := stage0.ParseMemoryLimit(f.memory); err != nil {
			return nil, fmt.Errorf("--memory: %w", err)
		}
		r, err := types.NewResourceMemoryIsolator(f.memory, f.memory)
		if err != nil {
			return nil, bad("memory", f.memory, err)
		}
		out = append(out, r.AsIsolator())
	}
	if f.cpu != "" {
		if _, err := stage0.ParseCPULimit(f.cpu); err != nil {
			return nil, fmt.Errorf("--cpu: %w", err)
		}
		r, err := types.NewResourceCPUIsolator(f.cpu, f.cpu)
		if err != nil {
			return nil, bad("cpu", f.cpu, err)
		}
		out = append(out, r.AsIsolator())
	}
	if f.cpuShares != "" {
		n, err := strconv.Atoi(f.cpuShares)
		if err != nil {
			return nil, bad("cpu-shares", f.cpuShares, err)
		}
		r, err := types.NewLinuxCPUShares(n)
		if err != nil {
			return nil, bad("cpu-shares", f.cpuShares, err)
		}
		out = append(out, r.AsIsolator())
	}
	if f.oomScoreAdj != "" {
		n, err := strconv.Atoi(f.oomScoreAdj)
		if err != nil {
			return nil, bad("oom-score-adj", f.oomScoreAdj, err)
		}
		r, err := types.NewLinuxOOMScoreAdj(n)
		if err != nil {
			return nil, bad("oom-score-adj", f.oomScoreAdj, err)
		}
		out = append(out, r.AsIsolator())
	}
	if len(f.capsRetain) > 0 && len(f.capsRemove) > 0 {
		return nil, fmt.Errorf("--caps-retain and --caps-remove cannot be used together: %w", errdefs.ErrInvalid)
	}
	for _, c := range []struct {
		flag  string
		names []string
	}{{"caps-retain", f.capsRetain}, {"caps-remove", f.capsRemove}} {
		if err := stage0.CheckCapabilities(normalizeCaps(c.names)); err != nil {
			return nil, fmt.Errorf("--%s: %w", c.flag, err)
		}
	}
	if len(f.capsRetain) > 0 {
		r, err := types.NewLinuxCapabilitiesRetainSet(normalizeCaps(f.capsRetain)...)
		if err != nil {
			return nil, bad("caps-retain", strings.Join(f.capsRetain, ","), err)
		}
		iso, err := r.AsIsolator()
		if err != nil {
			return nil, err
		}
		out = append(out, *iso)
	}
	if len(f.capsRemove) > 0 {
		r, err := types.NewLinuxCapabilitiesRevokeSet(normalizeCaps(f.capsRemove)...)
		if err != nil {
			return nil, bad("caps-remove", strings.Join(f.capsRemove, ","), err)
		}
		iso, err := r.AsIsolator()
		if err != nil {
			return nil, err
		}
		out = append(out, *iso)
	}
	if f.seccomp != "" {
		iso, err := seccompIsolator(f.seccomp)
		if err != nil {
			return nil, bad("seccomp", f.seccomp, err)
		}
		out = append(out, *iso)
	}
	return out, nil
}

// normalizeCaps accepts "net_bind_service" as well as "CAP_NET_BIND_SERVICE".
func normalizeCaps(in []string) []string {
	out := make([]string, 0, len(in))
	for _, c := range in {
		c = strings.ToUpper(strings.TrimSpace(c))
		if c == "" {
			continue
		}
		if !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		out = append(out, c)
	}
	return out
}

// seccompIsolator reads rkt's --seccomp syntax:
// mode=retain|remove[,errno=ENAME],syscall1,syscall2,...
func seccompIsolator(s string) (*types.Isolator, error) {
	mode, errno := "", ""
	var syscalls []string
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		switch {
		case ok && k == "mode":
			mode = v
		case ok && k == "errno":
			errno = v
		case ok:
			return nil, fmt.Errorf("unknown key %q", k)
		case part != "":
			syscalls = append(syscalls, part)
		}
	}
	switch mode {
	case "retain":
		r, err := types.NewLinuxSeccompRetainSet(errno, syscalls...)
		if err != nil {
			return nil, err
		}
		return r.AsIsolator()
	case "remove":
		r, err := types.NewLinuxSeccompRemoveSet(errno, syscalls...)
		if err != nil {
			return nil, err
		}
		return r.AsIsolator()
	}
	return nil, fmt.Errorf("mode must be retain or remove")
}

// validate refuses flag values of one app (or the pod-wide defaults) that
// would fail later or silently mean something else: flags given empty,
// limits out of range, unknown capabilities and malformed mounts. It runs
// before anything is fetched.
func (f appFlags) validate() error {
	for _, name := range []string{"user", "group", "memory", "cpu", "cpu-shares", "oom-score-adj", "working-dir", "exec", "name", "seccomp"} {
		if f.set[name] && f.value(name) == "" {
			return fmt.Errorf("--%s is empty; omit it to keep the image's value: %w", name, errdefs.ErrInvalid)
		}
	}
	if _, err := f.isolators(); err != nil {
		return err
	}
	for _, m := range f.mounts {
		if _, err := parseMountFlag(m); err != nil {
			return err
		}
	}
	return nil
}

// value is the value of a string flag by name, for validate.
func (f appFlags) value(name string) string {
	switch name {
	case "user":
		return f.user
	case "group":
		return f.group
	case "memory":
		return f.memory
	case "cpu":
		return f.cpu
	case "cpu-shares":
		return f.cpuShares
	case "oom-score-adj":
		return f.oomScoreAdj
	case "working-dir":
		return f.workingDir
	case "exec":
		return f.exec
	case "name":
		return f.name
	case "seccomp":
		return f.seccomp
	}
	return ""
}
