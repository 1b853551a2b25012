package pod

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// AppMount is one volume mounted into one app.
type AppMount struct {
	Volume types.Volume
	// Source is the host path of what is mounted.
	Source string
	// Target is the path inside the app's root.
	Target    string
	ReadOnly  bool
	Recursive bool
}

// EmptyVolumeDir is where an empty volume's directory lives: inside the
// stage1 rootfs so that flavours with their own root see it too.
func (p *Pod) EmptyVolumeDir(name types.ACName) string {
	return filepath.Join(contract.InStage1(p.Dir, contract.Stage1VolumesDir), name.String())
}

// AppMounts works out what is mounted where in an app: the runtime app's
// explicit mounts first, then pod volumes matched by name to the image's
// mount points. Empty volumes are created (once) with their mode and owner.
func (p *Pod) AppMounts(ra *schema.RuntimeApp, im *schema.ImageManifest) ([]AppMount, error) {
	vols := map[types.ACName]types.Volume{}
	for _, v := range p.Manifest.Volumes {
		vols[v.Name] = v
	}
	mountPoints := map[types.ACName]types.MountPoint{}
	if ra.App != nil {
		for _, mp := range ra.App.MountPoints {
			mountPoints[mp.Name] = mp
		}
	}
	if im != nil && im.App != nil {
		for _, mp := range im.App.MountPoints {
			if _, ok := mountPoints[mp.Name]; !ok {
				mountPoints[mp.Name] = mp
			}
		}
	}
	var out []AppMount
	targets := map[string]bool{}
	add := func(v types.Volume, target string, mpReadOnly bool) error {
		target = filepath.Clean("/" + target)
		if targets[target] {
			return nil // the first (explicit) mount of a path wins
		}
		targets[target] = true
		// The volume's readOnly, when it sets one, wins over the mount
		// point's, as in rkt.
		ro := mpReadOnly
		if v.ReadOnly != nil {
			ro = *v.ReadOnly
		}
		m := AppMount{Volume: v, Target: target, ReadOnly: ro, Recursive: v.Recursive == nil || *v.Recursive}
		switch v.Kind {
		case "host":
			m.Source = v.Source
		case "empty":
			dir, created, err := p.ensureEmptyVolume(v)
			if err != nil {
				return err
			}
			// A converted Docker image's new volume starts with the
			// image's files at its path, as in Docker and rkt.
			if created && DockerVolumes(im) {
				if err := fillFromImage(p.AppRoot(ra.Name), target, dir, defaultOwnerAndMode(v)); err != nil {
					return fmt.Errorf("app %s: volume %s: %w", ra.Name, v.Name, err)
				}
			}
			m.Source = dir
		default:
			return fmt.Errorf("volume %s: unknown kind %q: %w", v.Name, v.Kind, errdefs.ErrInvalid)
		}
		out = append(out, m)
		return nil
	}
	for _, mnt := range ra.Mounts {
		v, ok := vols[mnt.Volume]
		if mnt.AppVolume != nil {
			v, ok = *mnt.AppVolume, true
		}
		if !ok {
			return nil, fmt.Errorf("app %s mounts volume %q, which the pod does not define: %w", ra.Name, mnt.Volume, errdefs.ErrNotFound)
		}
		target := mnt.Path
		mp, hasMP := mountPoints[mnt.Volume]
		if target == "" && hasMP {
			target = mp.Path
		}
		if target == "" {
			return nil, fmt.Errorf("app %s: mount of volume %q has no target: %w", ra.Name, mnt.Volume, errdefs.ErrInvalid)
		}
		if err := add(v, target, hasMP && mp.ReadOnly); err != nil {
			return nil, err
		}
	}
	for name, mp := range mountPoints {
		v, ok := vols[name]
		if !ok {
			continue
		}
		if err := add(v, mp.Path, mp.ReadOnly); err != nil {
			return nil, err
		}
	}
	sortByDepth(out)
	return out, nil
}

// sortByDepth orders mounts so that a mount's target is never below a
// later one's: shallower targets first (ties by path, so the order does
// not depend on map iteration), as rkt does. /dir1 is then mounted before
// /dir1/dir2/dir3, which stays visible on top of it.
func sortByDepth(ms []AppMount) {
	sort.SliceStable(ms, func(i, j int) bool {
		di, dj := depth(ms[i].Target), depth(ms[j].Target)
		if di != dj {
			return di < dj
		}
		return ms[i].Target < ms[j].Target
	})
}

// depth is the number of components of a clean absolute path.
func depth(p string) int {
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

// ensureEmptyVolume makes an empty volume's directory, with the volume's
// mode and owner, unless it exists; created says it was made now.
func (p *Pod) ensureEmptyVolume(v types.Volume) (dir string, created bool, err error) {
	dir = p.EmptyVolumeDir(v.Name)
	if _, err := os.Stat(dir); err == nil {
		return dir, false, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", false, fmt.Errorf("volume %s: %w", v.Name, err)
	}
	mode := os.FileMode(0o755)
	if v.Mode != nil {
		var m uint32
		if _, err := fmt.Sscanf(*v.Mode, "%o", &m); err != nil {
			return "", false, fmt.Errorf("volume %s: mode %q: %w", v.Name, *v.Mode, errdefs.ErrInvalid)
		}
		mode = os.FileMode(m)
	}
	if err := os.Chmod(dir, mode); err != nil {
		return "", false, err
	}
	uid, gid := 0, 0
	if v.UID != nil {
		uid = *v.UID
	}
	if v.GID != nil {
		gid = *v.GID
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return "", false, err
	}
	return dir, true, nil
}

// defaultOwnerAndMode reports whether an empty volume leaves its mode and
// owner at appc's defaults (0755, root): a converted Docker image's
// directory then gives them, as in Docker.
func defaultOwnerAndMode(v types.Volume) bool {
	return (v.Mode == nil || *v.Mode == "0755") && (v.UID == nil || *v.UID == 0) && (v.GID == nil || *v.GID == 0)
}
