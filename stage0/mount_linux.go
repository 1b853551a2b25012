package stage0

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"
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
