package stage0

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/appc/spec/schema"

	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// Trees is what preparing a pod needs from the image store.
type Trees interface {
	// Tree returns the rendered tree of an image (its dependencies
	// included) as the directories whose union is its rootfs, top first
	// (one for an ACI, the layer trees of an OCI image), holding it so it
	// cannot be removed until release is called. Waiting for another
	// process to render it ends when ctx is done.
	Tree(ctx context.Context, imageID string) (t TreeRef, release func() error, err error)
	// Manifest returns a stored image's manifest.
	Manifest(imageID string) (*schema.ImageManifest, error)
}

// TreeRef is a rendered tree as Trees hands it out.
type TreeRef struct {
	ID string
	// Lowers are the directories whose union is the rootfs, top first.
	Lowers []string
	// Layered says Lowers are an OCI image's layer trees, whose
	// overlayfs whiteouts a copy must apply (oci.Flatten), even of one.
	Layered bool
}

// PrepareConfig is what a pod is made of.
type PrepareConfig struct {
	Trees Trees
	// Stage1ImageID is the stage1 image; Stage1Flavour names its built-in
	// flavour, if it is one.
	Stage1ImageID string
	Stage1Flavour string
	// Spec describes the apps; PodManifest, when set, is used instead
	// (--pod-manifest) and Spec is ignored.
	Spec        PodSpec
	PodManifest *schema.PodManifest
	// UseOverlay mounts the rootfs as overlays over the cached trees;
	// otherwise the trees are copied into the pod.
	UseOverlay bool
	// PrivateUsers runs the pod in a user namespace of its own, whose IDs
	// are a range of the host's picked now (see pickUserRange).
	PrivateUsers bool
	Log          *slog.Logger
}

// Prepare lays out a pod that this process holds in the prepare state:
// manifests, tree references, rootfs directories and the pod manifest (see
// Documentation/design.md, "A pod directory"). It does not mount anything.
// Once ctx is done it stops, with ctx's error, at the next image; the pod
// is then left as a failed prepare.
func Prepare(ctx context.Context, p *Pod, cfg PrepareConfig) error {
	if p.lock == nil || p.dir != dirPrepare {
		return fmt.Errorf("pod %s is not being prepared by this process: %w", p.UUID, errdefs.ErrInvalid)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	useOverlay := cfg.UseOverlay
	if useOverlay && !overlaySupported() {
		log.Warn("overlayfs is not available; copying image trees into the pod instead")
		useOverlay = false
	}
	rec := &podRecord{CreatedAt: time.Now().UTC(), Stage1: cfg.Stage1ImageID, Stage1Flavour: cfg.Stage1Flavour, Overlay: useOverlay}

	if cfg.PrivateUsers {
		if err := pickUserRange(ctx, p.podsDir, p.UUID, func(r contract.UserRange) error {
			rec.PrivateUsers = r.String()
			return p.writeRecord(rec)
		}); err != nil {
			return err
		}
	}

	var releases []func() error
	defer func() {
		for _, r := range releases {
			r()
		}
	}()

	// The stage1 image.
	s1Manifest, err := cfg.Trees.Manifest(cfg.Stage1ImageID)
	if err != nil {
		return fmt.Errorf("stage1 image %s: %w", cfg.Stage1ImageID, err)
	}
	s1, release, err := cfg.Trees.Tree(ctx, cfg.Stage1ImageID)
	s1Tree, s1Lowers := s1.ID, s1.Lowers
	if err != nil {
		return fmt.Errorf("stage1 image %s: %w", cfg.Stage1ImageID, err)
	}
	releases = append(releases, release)
	if err := writeJSON(contract.Stage1Manifest(p.Path()), s1Manifest); err != nil {
		return err
	}
	if err := atomicfile.Replace(contract.Stage1TreeStoreID(p.Path()), []byte(s1Tree), 0o644); err != nil {
		return err
	}
	stage1Rootfs := contract.Stage1Rootfs(p.Path())
	if err := os.MkdirAll(stage1Rootfs, 0o755); err != nil {
		return err
	}
	// Where stage0 may write into the stage1 rootfs before it is mounted.
	stage1Writable := stage1Rootfs
	if useOverlay {
		m := withLowers(overlayMount{
			Upper:  contract.OverlayUpper("", s1Tree, ""),
			Work:   contract.OverlayWork("", s1Tree, ""),
			Target: contract.Stage1Rootfs(""),
		}, s1Lowers)
		if cfg.PrivateUsers {
			m = withIDMappedLowers(m, s1Tree)
		}
		if err := makeOverlayDirs(p, m); err != nil {
			return err
		}
		rec.Mounts = append(rec.Mounts, m)
		stage1Writable = p.File(m.Upper)
	} else if err := copyLowers(ctx, s1, stage1Rootfs); err != nil {
		return fmt.Errorf("copying the stage1 rootfs: %w", err)
	}

	// The pod manifest.
	pm := cfg.PodManifest
	if pm == nil {
		images := make([]*schema.ImageManifest, len(cfg.Spec.Apps))
		for i, a := range cfg.Spec.Apps {
			im, err := cfg.Trees.Manifest(a.ImageID)
			if err != nil {
				return fmt.Errorf("image %s: %w", a.ImageID, err)
			}
			images[i] = im
		}
		pm, err = BuildPodManifest(cfg.Spec, images)
		if err != nil {
			return err
		}
	}
	if err := ValidatePodManifest(pm, flavourOf(cfg.Stage1Flavour)); err != nil {
		return err
	}

	// The apps.
	for _, ra := range pm.Apps {
		name := ra.Name.String()
		id := ra.Image.ID.String()
		im, err := cfg.Trees.Manifest(id)
		if err != nil {
			return fmt.Errorf("app %s: image %s: %w", name, id, err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		tree, release, err := cfg.Trees.Tree(ctx, id)
		treeID, lowers := tree.ID, tree.Lowers
		if err != nil {
			return fmt.Errorf("app %s: image %s: %w", name, id, err)
		}
		releases = append(releases, release)
		if err := writeJSON(contract.AppImageManifest(p.Path(), name), im); err != nil {
			return err
		}
		if err := atomicfile.Replace(contract.AppTreeStoreID(p.Path(), name), []byte(treeID), 0o644); err != nil {
			return err
		}
		appRootfs := contract.Stage1AppRootfs(name)
		if err := os.MkdirAll(filepath.Join(stage1Writable, appRootfs), 0o755); err != nil {
			return err
		}
		m := withLowers(overlayMount{
			Upper:  contract.OverlayUpper("", treeID, name),
			Work:   contract.OverlayWork("", treeID, name),
			Target: contract.InStage1("", appRootfs),
		}, lowers)
		if cfg.PrivateUsers {
			m = withIDMappedLowers(m, treeID)
		}
		appOverlay := useOverlay
		if why := overlayFits(lowers, p.File(m.Upper), p.File(m.Work)); appOverlay && why != "" {
			log.Warn("app rootfs cannot be an overlay; flattening its layers into the pod instead", "app", name, "reason", why)
			appOverlay = false
		}
		if appOverlay {
			if err := makeOverlayDirs(p, m); err != nil {
				return err
			}
			rec.Mounts = append(rec.Mounts, m)
		} else if err := copyLowers(ctx, tree, filepath.Join(stage1Writable, appRootfs)); err != nil {
			return fmt.Errorf("app %s: copying its rootfs: %w", name, err)
		}
		if err := writeJSON(filepath.Join(stage1Writable, contract.Stage1AppManifest(name)), im); err != nil {
			return err
		}
	}
	for _, d := range []string{contract.Stage1StatusDir, contract.Stage1EnvDir} {
		if err := os.MkdirAll(filepath.Join(stage1Writable, d), 0o755); err != nil {
			return err
		}
	}
	if useOverlay {
		if err := atomicfile.Replace(contract.OverlayPrepared(p.Path()), nil, 0o644); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.writeRecord(rec); err != nil {
		return err
	}
	// The pod manifest last: its presence says the pod is complete.
	if err := writeJSON(contract.PodManifest(p.Path()), pm); err != nil {
		return err
	}
	// The summary for listings is derived data: without it, list makes
	// it again from the pod directory.
	if sum, err := p.summaryOf(pm); err == nil {
		p.storeSummary(sum)
	}
	return nil
}

func writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Replace(path, data, 0o644)
}

func makeOverlayDirs(p *Pod, m overlayMount) error {
	for _, d := range append([]string{m.Upper, m.Work, m.IDMappedLower}, m.IDMappedLowers...) {
		if d == "" {
			continue
		}
		if err := os.MkdirAll(p.File(d), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// overlaySupported reports whether the kernel knows overlayfs.
func overlaySupported() bool {
	data, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(strings.TrimPrefix(line, "nodev")) == "overlay" {
			return true
		}
	}
	return false
}

// copyTree copies a rendered tree with everything a root filesystem holds
// (owners, modes, devices, hard links, xattrs); coreutils' cp does this
// completely and is on every host orbit runs on.
func copyTree(src, dst string) error {
	if _, err := os.Stat(src); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("tree %s is missing: %w", src, errdefs.ErrNotFound)
		}
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd := exec.Command("cp", "-a", "--reflink=auto", src+"/.", dst)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("cp: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
