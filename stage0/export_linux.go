package stage0

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/aci"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// ExportConfig says what ExportApp writes and where.
type ExportConfig struct {
	// App names the app to export; empty means the pod's only app.
	App string
	// Dest is the ACI file to write.
	Dest string
	// Overwrite replaces Dest if it exists.
	Overwrite bool
	// MaxSize, when positive, bounds the size of the app's files together
	// (as the store bounds an image it imports): an app that left more,
	// such as a huge sparse file, is refused before its bytes are read.
	MaxSize int64
}

// ErrAppNotNamed is returned by ExportApp for a pod of several apps when
// no app was named.
var ErrAppNotNamed = fmt.Errorf("the pod has several apps: %w", errdefs.ErrInvalid)

// ExportApp writes an exited pod's app as a gzip-compressed ACI: the app's
// image manifest and its root filesystem as the app left it (the image's
// files with the app's changes over them). The pod is locked for the whole
// time so that gc leaves it be, and the file is written through a
// temporary file, so Dest is either the whole image or untouched.
func ExportApp(ctx context.Context, p *Pod, cfg ExportConfig) error {
	switch p.State {
	case Exited, ExitedGarbage:
	case Running:
		return fmt.Errorf("pod %s is running; only an exited pod can be exported: %w", p.UUID, errdefs.ErrBusy)
	default:
		return fmt.Errorf("pod %s is %s; only an exited pod can be exported: %w", p.UUID, p.State, errdefs.ErrInvalid)
	}
	l, err := p.lockWhereSeen(probeGrace)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := p.checkNoProcesses(); err != nil {
		return err
	}
	pm, err := p.Manifest()
	if err != nil {
		return err
	}
	app := cfg.App
	if app == "" {
		if len(pm.Apps) != 1 {
			return fmt.Errorf("pod %s has %d apps; name the one to export: %w", p.UUID, len(pm.Apps), ErrAppNotNamed)
		}
		app = pm.Apps[0].Name.String()
	} else if pm.Apps.Get(appNameOrEmpty(app)) == nil {
		return fmt.Errorf("pod %s has no app %q: %w", p.UUID, app, errdefs.ErrNotFound)
	}
	data, err := os.ReadFile(contract.AppImageManifest(p.Path(), app))
	if err != nil {
		return fmt.Errorf("app %s: its image manifest: %w", app, err)
	}
	im, err := aci.DecodeManifest(data)
	if err != nil {
		return fmt.Errorf("app %s: its image manifest: %w", app, err)
	}
	// The rootfs written is the rendered tree: the image's dependencies are
	// in it already (and what the app removed of theirs must stay removed),
	// and every file the app made is in it, whitelisted or not.
	im.Dependencies = nil
	im.PathWhitelist = nil
	if err := ctx.Err(); err != nil {
		return err
	}
	rootfs, release, err := p.mountAppForExport(app)
	if err != nil {
		return fmt.Errorf("app %s: %w", app, err)
	}
	defer release()
	opts := aci.WriteOptions{Compression: aci.CompressionGzip, SkipSockets: true, MaxSize: cfg.MaxSize}
	if err := aci.WriteFile(ctx, cfg.Dest, im, rootfs, opts, cfg.Overwrite); err != nil {
		return fmt.Errorf("app %s: %w", app, err)
	}
	return nil
}

// exportDirPattern names the temporary mount points of ExportApp inside
// the pod directory, where gc unmounts anything left after a crash.
const exportDirPattern = "export-*"

// mountAppForExport mounts the app's root filesystem, read-only and
// without any mount below it (volumes, /proc), at a new directory in the
// pod directory. An app whose rootfs was an overlay is the image's tree
// with the app's upper directory over it (a read-only overlay of the two,
// so the upper directory's whiteouts hide the files the app removed); one
// whose rootfs was a copy (--no-overlay, or an app added to a sandbox) is
// its copy. release unmounts and removes the directory.
func (p *Pod) mountAppForExport(app string) (string, func(), error) {
	rec, err := p.record()
	if err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp(p.Path(), exportDirPattern)
	if err != nil {
		return "", nil, err
	}
	release := func() {
		unix.Unmount(dir, unix.MNT_DETACH)
		os.Remove(dir)
	}
	target := contract.InStage1("", contract.Stage1AppRootfs(app))
	var found *overlayMount
	for i := range rec.Mounts {
		if rec.Overlay && filepath.Clean(rec.Mounts[i].Target) == target {
			found = &rec.Mounts[i]
		}
	}
	if found != nil {
		opts := fmt.Sprintf("lowerdir=%s:%s", escapeOverlayPath(p.File(found.Upper)), escapeOverlayPath(found.Lower))
		if err := unix.Mount("overlay", dir, "overlay", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
			os.Remove(dir)
			return "", nil, fmt.Errorf("mounting its rootfs: %w", err)
		}
		return dir, release, nil
	}
	// A copy: in a pod made with copies, or an app added to a sandbox
	// (whose stage1 rootfs, an overlay, holds it in its upper directory).
	src := p.stage1Data(contract.Stage1AppRootfs(app))
	if fi, err := os.Lstat(src); err != nil || !fi.IsDir() {
		os.Remove(dir)
		return "", nil, fmt.Errorf("its rootfs %s is missing: %w", src, errdefs.ErrNotFound)
	}
	// Not MS_REC: the volumes and API filesystems the app had are left out.
	if err := unix.Mount(src, dir, "", unix.MS_BIND, ""); err != nil {
		os.Remove(dir)
		return "", nil, fmt.Errorf("mounting its rootfs: %w", err)
	}
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		release()
		return "", nil, fmt.Errorf("mounting its rootfs read-only: %w", err)
	}
	return dir, release, nil
}
