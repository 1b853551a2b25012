package cgroup

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/moby/sys/mountinfo"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// Mode is how a host has mounted its cgroups.
type Mode int

const (
	// Legacy: cgroup v1 hierarchies only.
	Legacy Mode = iota + 1
	// Hybrid: v1 hierarchies carry the controllers, and a cgroup2 mount
	// (typically /sys/fs/cgroup/unified) exists beside them.
	Hybrid
	// Unified: a single cgroup2 hierarchy and no v1 controllers.
	Unified
)

func (m Mode) String() string {
	switch m {
	case Legacy:
		return "legacy"
	case Hybrid:
		return "hybrid"
	case Unified:
		return "unified"
	}
	return "unknown"
}

// Hierarchy is one mounted cgroup hierarchy.
type Hierarchy struct {
	// Mountpoint is where the hierarchy is mounted.
	Mountpoint string
	// Root is the cgroup the mount shows at Mountpoint, relative to the
	// hierarchy's root ("/" unless a bind mount or a cgroup namespace
	// shows a sub-tree).
	Root string
	// Controllers are the controllers bound to it: for v1 from the mount's
	// options, for v2 those listed in the mount root's cgroup.controllers.
	Controllers []string
	// Name is a v1 named hierarchy's name (name=systemd), else empty.
	Name string
	// device identifies the superblock, to notice one hierarchy mounted twice.
	device string
	// unified marks the cgroup2 hierarchy.
	unified bool
}

// Has reports whether the controller is bound to the hierarchy.
func (h *Hierarchy) Has(controller string) bool {
	return slices.Contains(h.Controllers, controller)
}

// Layout is what cgroup hierarchies the calling process can see, and where.
type Layout struct {
	Mode Mode
	// V1 holds the v1 hierarchies, controller-bearing or named, in mount
	// order, one entry per hierarchy.
	V1 []*Hierarchy
	// Unified is the cgroup2 mount, nil when there is none.
	Unified *Hierarchy
}

// v1Options are v1 mount options that are not controller names.
var v1Options = []string{"rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode", "all", "none", "favordynmods", "nofavordynmods"}

// parseMountinfo builds a Layout from a mountinfo text, parsed with
// moby/sys/mountinfo (which copes with what the kernel really prints: empty
// sources, optional fields, escapes). Controllers of the cgroup2 mount are
// not known from mountinfo; Detect fills them in.
func parseMountinfo(r io.Reader) (*Layout, error) {
	infos, err := mountinfo.GetMountsFromReader(r, nil)
	if err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w: %w", err, errdefs.ErrInvalid)
	}
	type mount struct {
		point string
		h     *Hierarchy
		v2    bool
	}
	hidden := hiddenMounts(infos)
	var mounts []mount
	for _, m := range infos {
		if hidden[m.ID] {
			continue
		}
		if m.FSType != "cgroup" && m.FSType != "cgroup2" {
			continue
		}
		point := m.Mountpoint
		h := &Hierarchy{Mountpoint: point, Root: m.Root, device: fmt.Sprintf("%d:%d", m.Major, m.Minor), unified: m.FSType == "cgroup2"}
		if m.FSType == "cgroup" {
			for _, o := range strings.Split(m.VFSOptions, ",") {
				switch {
				case strings.HasPrefix(o, "name="):
					h.Name = strings.TrimPrefix(o, "name=")
				case o == "", strings.Contains(o, "="), slices.Contains(v1Options, o):
				default:
					h.Controllers = append(h.Controllers, o)
				}
			}
			if len(h.Controllers) == 0 && h.Name == "" {
				continue
			}
		}
		mounts = append(mounts, mount{point: point, h: h, v2: m.FSType == "cgroup2"})
	}
	l := &Layout{}
	seen := map[string]bool{}
	for _, m := range mounts {
		if seen[m.h.device] {
			continue // the same hierarchy mounted again: keep the first
		}
		seen[m.h.device] = true
		if m.v2 {
			l.Unified = m.h
		} else {
			l.V1 = append(l.V1, m.h)
		}
	}
	l.Mode = l.mode()
	if l.Mode == 0 {
		return nil, fmt.Errorf("no cgroup hierarchy mounted: %w", errdefs.ErrNotFound)
	}
	return l, nil
}

// hiddenMounts returns the IDs of the mounts no path leads to: those
// another mount covers. It works on the mount tree (each mount's parent),
// not on the order mountinfo lists mounts in, which is not the order they
// were made in once mounts are moved: systemd-nspawn mounts a container's
// cgroup2 tree first and moves it below the sysfs it mounts at /sys later,
// so mountinfo lists /sys/fs/cgroup before the /sys it is visible on.
//
// A mount is hidden when a mount is stacked on it (a child at the same
// mount point), when a later sibling sits at its mount point or an ancestor
// of it, or when its parent cannot be reached at its mount point.
func hiddenMounts(infos []*mountinfo.Info) map[int]bool {
	byID := make(map[int]*mountinfo.Info, len(infos))
	children := map[int][]*mountinfo.Info{}
	for _, m := range infos {
		byID[m.ID] = m
		if m.Parent != m.ID {
			children[m.Parent] = append(children[m.Parent], m)
		}
	}
	under := func(path, dir string) bool {
		return path == dir || dir == "/" || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
	}
	stackedOn := func(m *mountinfo.Info) bool {
		for _, c := range children[m.ID] {
			if c.Mountpoint == m.Mountpoint {
				return true
			}
		}
		return false
	}
	blocked := func(m *mountinfo.Info) bool {
		for _, s := range children[m.Parent] {
			if s.ID > m.ID && under(m.Mountpoint, s.Mountpoint) {
				return true
			}
		}
		return false
	}
	memo := map[int]bool{}
	// reached reports whether a path leads to m's mount point through
	// m's parent (m itself may still be stacked over).
	var reached func(m *mountinfo.Info, depth int) bool
	reached = func(m *mountinfo.Info, depth int) bool {
		if r, ok := memo[m.ID]; ok {
			return r
		}
		r := !blocked(m)
		if p, ok := byID[m.Parent]; r && ok && p.ID != m.ID && depth < len(infos) {
			r = reached(p, depth+1) && (p.Mountpoint == m.Mountpoint || !stackedOn(p))
		}
		memo[m.ID] = r
		return r
	}
	hidden := map[int]bool{}
	for _, m := range infos {
		if !reached(m, 0) || stackedOn(m) {
			hidden[m.ID] = true
		}
	}
	return hidden
}

func (l *Layout) mode() Mode {
	v1 := false
	for _, h := range l.V1 {
		if len(h.Controllers) > 0 {
			v1 = true
		}
	}
	switch {
	case v1 && l.Unified != nil:
		return Hybrid
	case v1:
		return Legacy
	case l.Unified != nil:
		return Unified
	}
	return 0
}

// v1For returns the v1 hierarchy the controller is bound to, or nil.
func (l *Layout) v1For(controller string) *Hierarchy {
	for _, h := range l.V1 {
		if h.Has(controller) {
			return h
		}
	}
	return nil
}

// hierarchies returns every hierarchy, v1 first then the unified one.
func (l *Layout) hierarchies() []*Hierarchy {
	hs := slices.Clone(l.V1)
	if l.Unified != nil {
		hs = append(hs, l.Unified)
	}
	return hs
}
