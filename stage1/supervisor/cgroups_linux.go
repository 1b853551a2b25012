package supervisor

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/orbit-containers/orbit/stage1/cgroup"
)

// supervisorGroup is the leaf, under CgroupParent, the supervisor moves
// itself into on a cgroup2-only host. The leading dot keeps it apart from
// app names (appc names cannot start with one).
const supervisorGroup = ".supervisor"

// setupCgroups detects the cgroup layout when the pod has a cgroup. A host
// without cgroups is an error only when an app has limits.
//
// cgroup v2 enables a controller for a cgroup's children only when the
// cgroup holds no process itself (the root excepted). When the supervisor
// sits in an ancestor of CgroupParent (typically the root of the cgroup
// namespace of a container), enabling controllers on the way down would
// fail, so it first moves itself into CgroupParent/.supervisor.
func (p *pod) setupCgroups() error {
	if p.cfg.CgroupParent == "" {
		return nil
	}
	l, err := cgroup.Detect()
	if err != nil {
		if p.anyLimits() {
			return err
		}
		p.log.Warn("running the apps without cgroups", "err", err)
		return nil
	}
	if p.cfg.WritableCgroups {
		// The supervisor writes through copies only it can reach; the
		// mounts its root shows (to an app through /proc/1/root too)
		// become read-only.
		if l, err = l.PrivateWritable(); err != nil {
			return err
		}
	}
	p.layout = l
	if l.Mode != cgroup.Unified || !p.anyLimits() {
		return nil
	}
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return fmt.Errorf("reading own cgroup: %w", err)
	}
	defer f.Close()
	self, ok := unifiedPath(f)
	if !ok || !inAncestor(self, l.Unified.Root, p.cfg.CgroupParent) {
		return nil
	}
	g, err := l.Create(path.Join(p.cfg.CgroupParent, supervisorGroup), cgroup.Limits{})
	if err != nil {
		return err
	}
	p.log.Debug("moving the supervisor out of the pod's ancestors", "to", g.Path())
	return g.Add(os.Getpid())
}

func (p *pod) anyLimits() bool {
	for _, a := range p.cfg.Apps {
		if a.Limits != (cgroup.Limits{}) {
			return true
		}
	}
	return false
}

// unifiedPath reads the process's cgroup2 path ("0::/path") from a
// /proc/<pid>/cgroup text.
func unifiedPath(r io.Reader) (string, bool) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if p, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
			return p, true
		}
	}
	return "", false
}

// inAncestor reports whether the cgroup self (as /proc/self/cgroup shows
// it) is the mount root or an ancestor of parent, a path relative to a
// mount of the hierarchy that shows the cgroup mountRoot.
func inAncestor(self, mountRoot, parent string) bool {
	self, root := path.Clean("/"+self), path.Clean("/"+mountRoot)
	var rel string
	switch {
	case root == "/":
		rel = self
	case self == root:
		rel = "/"
	case strings.HasPrefix(self, root+"/"):
		rel = strings.TrimPrefix(self, root)
	default:
		return false // not visible through the mount
	}
	rel = strings.Trim(rel, "/")
	return rel == "" || parent == rel || strings.HasPrefix(parent, rel+"/")
}
