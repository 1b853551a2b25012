package stage0

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/idmap"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// mountPod makes the pod's overlay mounts (recorded at prepare time), in
// order. Mounts that are there already are left as they are, so a pod that
// was mounted before (an interrupted start) can be mounted again.
func mountPod(p *Pod, rec *podRecord) error {
	mounted, err := mountPointsBelow(p.Path())
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, m := range mounted {
		have[m] = true
	}
	idmapped := &idmappedLowers{}
	defer idmapped.close()
	if rec.PrivateUsers != "" {
		if r, err := contract.ParseUserRange(rec.PrivateUsers); err == nil {
			idmapped.r = &idmap.Range{Shift: r.Shift, Count: r.Count}
		}
	}
	for _, m := range rec.Mounts {
		target := p.File(m.Target)
		real, err := RealPath(target)
		if err != nil {
			return err
		}
		if have[real] {
			continue
		}
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
		lowers := m.Lowers
		if len(lowers) == 0 {
			lowers = []string{m.Lower}
		}
		mapped := m.IDMappedLowers
		if len(m.Lowers) == 0 {
			mapped = []string{m.IDMappedLower}
		}
		if len(mapped) == len(lowers) {
			lowers = append([]string(nil), lowers...)
			for i, at := range mapped {
				if at != "" {
					lowers[i] = idmapped.lower(lowers[i], p.File(at), have)
				}
			}
		}
		opts, done, err := mountOptions(lowers, p.File(m.Upper), p.File(m.Work))
		if err != nil {
			return fmt.Errorf("mounting overlay on %s: %w", target, err)
		}
		err = unix.Mount("overlay", target, "overlay", 0, opts)
		done()
		if err != nil {
			return fmt.Errorf("mounting overlay on %s: %w", target, err)
		}
	}
	return nil
}

// escapeOverlayPath escapes the characters overlayfs's option parser treats
// specially.
func escapeOverlayPath(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `,`, `\,`, `:`, `\:`)
	return r.Replace(p)
}

// unmountPod detaches every mount below the pod directory, deepest first.
func unmountPod(p *Pod) error {
	points, err := mountPointsBelow(p.Path())
	if err != nil {
		return err
	}
	var errs []error
	for i := len(points) - 1; i >= 0; i-- {
		if err := unix.Unmount(points[i], unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", points[i], err))
		}
	}
	return errors.Join(errs...)
}

// mountPointsBelow lists the mount points at or below dir, shallowest
// first. The kernel reports mount points by their real path, so dir is
// resolved first: a pods directory reached through a symlink must not hide
// the mounts below it.
func mountPointsBelow(dir string) ([]string, error) {
	real, err := RealPath(dir)
	if err != nil {
		return nil, err
	}
	mounts, err := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		return !(m.Mountpoint == real || strings.HasPrefix(m.Mountpoint, real+"/")), false
	})
	if err != nil {
		return nil, fmt.Errorf("reading the mount table: %w", err)
	}
	out := make([]string, 0, len(mounts))
	for _, m := range mounts {
		out = append(out, m.Mountpoint)
	}
	sort.SliceStable(out, func(i, j int) bool {
		return strings.Count(out[i], "/") < strings.Count(out[j], "/")
	})
	return out, nil
}

// idmappedLowers mounts the store's trees ID-mapped for a pod with a user
// namespace (overlayMount.IDMappedLower), with one user namespace for all.
type idmappedLowers struct {
	r      *idmap.Range
	ns     *os.File
	failed bool // the kernel or the store's filesystem cannot
}

// lower returns the lower layer for the store's tree: at (the tree ID-mapped,
// mounted now unless it is already) or, when the tree cannot be ID-mapped,
// the tree itself, whose files stage1 then chowns into the overlay's upper layer.
func (l *idmappedLowers) lower(tree, at string, mounted map[string]bool) string {
	if real, err := RealPath(at); err == nil && mounted[real] {
		return at
	}
	if l.r == nil || l.failed {
		return tree
	}
	var err error
	if l.ns == nil {
		l.ns, err = idmap.UserNamespace(*l.r)
	}
	var mnt *os.File
	if err == nil {
		mnt, err = idmap.Clone(tree, l.ns)
	}
	if err == nil {
		err = idmap.Attach(mnt, at)
		mnt.Close()
	}
	if err != nil {
		l.failed = true
		return tree
	}
	if real, err := RealPath(at); err == nil {
		mounted[real] = true
	}
	return at
}

func (l *idmappedLowers) close() {
	if l.ns != nil {
		l.ns.Close()
	}
}
