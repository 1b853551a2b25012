package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// trackedV1 are the v1 controllers a group is always created under, limits
// or not, so the kernel accounts for it (memory usage, OOM kills, CPU time,
// task count). Other v1 hierarchies (devices, freezer, named ones) are left
// alone.
var trackedV1 = []string{"memory", "cpu", "cpuacct", "pids"}

// killTimeout bounds how long Kill and Remove wait for a group to empty.
const killTimeout = 10 * time.Second

// Group is one cgroup, present in each hierarchy it was created in.
type Group struct {
	path string
	dirs []string // the group's directory in every hierarchy it uses
	// v1 pairs each v1 hierarchy the group is in with its directory there.
	v1 []v1Dir
	// memory is the directory holding the memory controller's files, and
	// memoryV2 whether it is a v2 one; empty without a memory controller.
	memory   string
	memoryV2 bool
	// unified is the group's directory in the cgroup2 tree, if any.
	unified string
	// devicesV1: the group's device policy is enforced by a v1 devices
	// hierarchy.
	devicesV1 bool
}

type v1Dir struct {
	h   *Hierarchy
	dir string
}

// Path is the group's path relative to the hierarchies' roots.
func (g *Group) Path() string { return g.path }

// Dirs lists the group's directory in every hierarchy it is in.
func (g *Group) Dirs() []string { return slices.Clone(g.dirs) }

// UnifiedDir is the group's directory in the cgroup2 tree, or "" when the
// host has none.
func (g *Group) UnifiedDir() string { return g.unified }

// DevicesV1 reports whether a v1 devices hierarchy enforces the device
// rules CreateConfined was given.
func (g *Group) DevicesV1() bool { return g.devicesV1 }

// Create makes the group path in every hierarchy it needs and sets lim.
// Groups go under the v1 memory, cpu, cpuacct and pids hierarchies that
// exist, and under the cgroup2 tree when one is mounted; a limit whose
// controller is bound to no v1 hierarchy is set through cgroup2, enabling the
// controller in cgroup.subtree_control of each ancestor. Existing directories
// are reused; on failure the directories Create made are removed again.
func (l *Layout) Create(path string, lim Limits) (*Group, error) {
	return l.create(path, lim, nil)
}

// CreateConfined is Create for a group whose processes may use only the
// devices the rules allow: where the host has a v1 devices hierarchy, the
// group is made there too, set to deny every device but those (children
// made later inherit the policy and can never widen it). On cgroup2 the
// policy is an eBPF program the caller attaches to UnifiedDir (package
// devicefilter); DevicesV1 tells whether v1 already enforces it.
func (l *Layout) CreateConfined(path string, lim Limits, devices []DeviceRule) (*Group, error) {
	for _, r := range devices {
		if err := r.Validate(); err != nil {
			return nil, err
		}
	}
	if devices == nil {
		devices = []DeviceRule{}
	}
	return l.create(path, lim, devices)
}

// create makes the group; devices, when not nil, confines it in the v1
// devices hierarchy.
func (l *Layout) create(path string, lim Limits, devices []DeviceRule) (g *Group, err error) {
	p, err := cleanPath(path)
	if err != nil {
		return nil, err
	}
	if err := lim.Validate(); err != nil {
		return nil, fmt.Errorf("cgroup %s: %w", p, err)
	}
	var v1 []*Hierarchy
	for _, c := range trackedV1 {
		if h := l.v1For(c); h != nil && !slices.Contains(v1, h) {
			v1 = append(v1, h)
		}
	}
	devh := l.v1For("devices")
	if devices != nil && devh != nil && !slices.Contains(v1, devh) {
		v1 = append(v1, devh)
	}
	var v2 []string // controllers to enable and use in the unified tree
	for _, c := range lim.controllers() {
		if l.v1For(c) != nil {
			continue
		}
		if l.Unified == nil || !l.Unified.Has(c) {
			return nil, fmt.Errorf("cgroup %s: the %s controller is not available on this host: %w", p, c, errdefs.ErrNotFound)
		}
		v2 = append(v2, c)
	}

	g = &Group{path: p}
	var made []string
	defer func() {
		if err != nil {
			for _, d := range slices.Backward(made) {
				_ = unix.Rmdir(d)
			}
		}
	}()
	for _, h := range v1 {
		dir, m, err := mkdirGroup(h.Mountpoint, p, nil)
		made = append(made, m...)
		if err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", p, err)
		}
		g.dirs = append(g.dirs, dir)
		g.v1 = append(g.v1, v1Dir{h: h, dir: dir})
		if h.Has("memory") {
			g.memory = dir
		}
		if err := setV1(h, dir, lim); err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", p, err)
		}
		if devices != nil && h == devh {
			if err := setDevicesV1(dir, devices); err != nil {
				return nil, fmt.Errorf("cgroup %s: %w", p, err)
			}
			g.devicesV1 = true
		}
	}
	if u := l.Unified; u != nil {
		dir, m, err := mkdirGroup(u.Mountpoint, p, v2)
		made = append(made, m...)
		if err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", p, err)
		}
		g.dirs = append(g.dirs, dir)
		g.unified = dir
		if g.memory == "" && slices.Contains(v2, "memory") {
			g.memory, g.memoryV2 = dir, true
		}
		if err := setV2(dir, v2, lim); err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", p, err)
		}
		if g.memory == "" {
			// Memory enabled above the group by someone else still
			// accounts for it and reports its OOM kills.
			if _, err := os.Stat(filepath.Join(dir, "memory.events")); err == nil {
				g.memory, g.memoryV2 = dir, true
			}
		}
	}
	if len(g.dirs) == 0 {
		return nil, fmt.Errorf("cgroup %s: no usable cgroup hierarchy: %w", p, errdefs.ErrNotFound)
	}
	return g, nil
}

// mkdirGroup creates mount/p one level at a time, returning the group's
// directory and the directories it created. In a v2 tree, enable lists the
// controllers to turn on in cgroup.subtree_control of the mount root and of
// every ancestor of the group. A v1 cpuset hierarchy needs each new cgroup's
// cpus and mems filled in before tasks can join it; they are copied from the
// parent.
func mkdirGroup(mount, p string, enable []string) (dir string, made []string, err error) {
	dir = mount
	for _, c := range strings.Split(p, "/") {
		if err := enableControllers(dir, enable); err != nil {
			return "", made, err
		}
		parent := dir
		dir = filepath.Join(dir, c)
		if err := unix.Mkdir(dir, 0o755); err != nil {
			if err != unix.EEXIST {
				return "", made, fmt.Errorf("creating %s: %w", dir, err)
			}
			continue
		}
		made = append(made, dir)
		if err := inheritCpuset(parent, dir); err != nil {
			return "", made, err
		}
	}
	return dir, made, nil
}

// enableControllers turns on the controllers in dir's cgroup.subtree_control
// that are not on yet.
func enableControllers(dir string, controllers []string) error {
	if len(controllers) == 0 {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return fmt.Errorf("enabling controllers: %w", err)
	}
	on := strings.Fields(string(b))
	var add []string
	for _, c := range controllers {
		if !slices.Contains(on, c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := writeFile(dir, "cgroup.subtree_control", strings.Join(add, " ")); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("%w (cgroup v2 allows controllers only below cgroups without processes of their own)", err)
		}
		return err
	}
	return nil
}

func inheritCpuset(parent, dir string) error {
	for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
		cur, err := os.ReadFile(filepath.Join(dir, f))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(cur)) != "" {
			continue
		}
		v, err := os.ReadFile(filepath.Join(parent, f))
		if err != nil {
			return err
		}
		if err := writeFile(dir, f, strings.TrimSpace(string(v))); err != nil {
			return err
		}
	}
	return nil
}

func setV1(h *Hierarchy, dir string, lim Limits) error {
	if h.Has("memory") && lim.MemoryBytes != nil {
		if err := writeFile(dir, "memory.limit_in_bytes", strconv.FormatInt(*lim.MemoryBytes, 10)); err != nil {
			return err
		}
	}
	if h.Has("cpu") && lim.CPUMilli != nil {
		if err := writeFile(dir, "cpu.cfs_period_us", strconv.Itoa(cfsPeriodUS)); err != nil {
			return err
		}
		if err := writeFile(dir, "cpu.cfs_quota_us", strconv.FormatInt(cfsQuota(*lim.CPUMilli), 10)); err != nil {
			return err
		}
	}
	if h.Has("cpu") && lim.CPUShares != nil {
		if err := writeFile(dir, "cpu.shares", strconv.FormatUint(*lim.CPUShares, 10)); err != nil {
			return err
		}
	}
	if h.Has("pids") && lim.PidsMax != nil {
		if err := writeFile(dir, "pids.max", strconv.FormatInt(*lim.PidsMax, 10)); err != nil {
			return err
		}
	}
	return nil
}

// setV2 sets the limits whose controllers (in use) live in the unified tree.
func setV2(dir string, use []string, lim Limits) error {
	if slices.Contains(use, "memory") {
		if err := writeFile(dir, "memory.max", strconv.FormatInt(*lim.MemoryBytes, 10)); err != nil {
			return err
		}
	}
	if slices.Contains(use, "cpu") && lim.CPUMilli != nil {
		if err := writeFile(dir, "cpu.max", fmt.Sprintf("%d %d", cfsQuota(*lim.CPUMilli), cfsPeriodUS)); err != nil {
			return err
		}
	}
	if slices.Contains(use, "cpu") && lim.CPUShares != nil {
		if err := writeFile(dir, "cpu.weight", strconv.FormatUint(cpuWeight(*lim.CPUShares), 10)); err != nil {
			return err
		}
	}
	if slices.Contains(use, "pids") {
		if err := writeFile(dir, "pids.max", strconv.FormatInt(*lim.PidsMax, 10)); err != nil {
			return err
		}
	}
	return nil
}

// Add moves the process into the group in every hierarchy.
func (g *Group) Add(pid int) error {
	if pid <= 0 {
		return fmt.Errorf("cgroup %s: pid %d: %w", g.path, pid, errdefs.ErrInvalid)
	}
	for _, d := range g.dirs {
		if err := writeFile(d, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("cgroup %s: adding %d: %w", g.path, pid, err)
		}
	}
	return nil
}

// procs lists the processes in the group (not in its sub-groups), in every
// hierarchy it uses, without duplicates.
func (g *Group) procs() ([]int, error) {
	var pids []int
	for _, d := range g.dirs {
		p, err := readProcs(d)
		if err != nil {
			return nil, fmt.Errorf("cgroup %s: %w", g.path, err)
		}
		for _, pid := range p {
			if !slices.Contains(pids, pid) {
				pids = append(pids, pid)
			}
		}
	}
	slices.Sort(pids)
	return pids, nil
}

// OOMKilled reports whether the kernel's OOM killer killed a process of the
// group because of its memory limit: v1 memory.oom_control's oom_kill count
// (memory.failcnt on kernels older than 4.13, which only tells that the
// limit was hit), v2 memory.events' oom_kill count. A group without a memory
// controller reports false.
func (g *Group) OOMKilled() (bool, error) {
	if g.memory == "" {
		return false, nil
	}
	name := "memory.oom_control"
	if g.memoryV2 {
		name = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(g.memory, name))
	if err != nil {
		return false, fmt.Errorf("cgroup %s: %w", g.path, err)
	}
	if n, ok := keyedValue(string(b), "oom_kill"); ok {
		return n > 0, nil
	}
	if g.memoryV2 {
		return false, nil
	}
	b, err = os.ReadFile(filepath.Join(g.memory, "memory.failcnt"))
	if err != nil {
		return false, fmt.Errorf("cgroup %s: %w", g.path, err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return err == nil && n > 0, nil
}

// Kill kills every process in the group and waits until it is empty:
// SIGKILL to each member, repeated until none is left (a member may fork
// while it is being killed). The group stays usable.
//
// Kill does not write cgroup.kill: on the kernels tested (up to 6.18) every
// process later cloned into a cgroup that was once killed that way with
// CLONE_INTO_CGROUP (as StartIn does) is killed at birth, which would make
// the group useless for an app's post-stop handlers. Remove, after which the
// group is gone, uses it.
func (g *Group) Kill() error {
	if err := killDirs(g.dirs, ""); err != nil {
		return fmt.Errorf("cgroup %s: %w", g.path, err)
	}
	return nil
}

// killDirs empties the cgroups dirs (each one group's directory in some
// hierarchy). unified, when not empty, is the group's cgroup2 directory,
// whose cgroup.kill (kernel 5.14) kills the whole sub-tree atomically.
func killDirs(dirs []string, unified string) error {
	useKill := false
	if unified != "" {
		err := writeFile(unified, "cgroup.kill", "1")
		useKill = err == nil
		if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
			return err
		}
	}
	deadline := time.Now().Add(killTimeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		left := 0
		for _, d := range dirs {
			pids, err := readProcs(d)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			for _, pid := range pids {
				left++
				if !useKill {
					if err := unix.Kill(pid, syscall.SIGKILL); err != nil && err != unix.ESRCH {
						return fmt.Errorf("killing %d: %w", pid, err)
					}
				}
			}
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d processes still alive after %s: %w", left, killTimeout, errdefs.ErrBusy)
		}
		time.Sleep(wait)
	}
}

func readProcs(dir string) ([]int, error) {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%s/cgroup.procs: %q: %w", dir, f, errdefs.ErrInvalid)
		}
		if pid > 0 { // 0: a process outside our pid namespace
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// keyedValue finds "key N" in a flat-keyed cgroup file.
func keyedValue(text, key string) (int64, bool) {
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// writeFile writes one value to an existing cgroup control file.
func writeFile(dir, name, value string) error {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %q to %s: %w", value, filepath.Join(dir, name), err)
	}
	return nil
}
