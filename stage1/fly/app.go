package fly

import (
	"fmt"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"

	"github.com/orbit-containers/orbit/stage1/pod"
	"github.com/orbit-containers/orbit/stage2"
)

// appFor describes the pod's app to the stage2 launcher: the host's /dev,
// /proc and /sys and the app's volumes bound into its rootfs, its
// identity, environment and working directory. fly applies no isolators.
func appFor(p *pod.Pod, ra *schema.RuntimeApp, im *schema.ImageManifest, dnsConfMode string) (stage2.App, error) {
	root := p.AppRoot(ra.Name)
	a, err := appOf(ra, im)
	if err != nil {
		return stage2.App{}, err
	}
	app := stage2.App{
		Name:              ra.Name.String(),
		Root:              root,
		Exec:              append([]string(nil), a.Exec...),
		Env:               stage2.EnvironmentForUser(root, ra.Name.String(), a.User, a.Environment, nil),
		WorkingDir:        a.WorkingDirectory,
		User:              a.User,
		Group:             a.Group,
		SupplementaryGIDs: a.SupplementaryGIDs,
		ReadOnlyRootfs:    ra.ReadOnlyRootFS,
	}
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		app.Mounts = append(app.Mounts, stage2.Mount{Source: d, Target: d, FSType: "bind", Recursive: true, CreateDir: true})
	}
	mounts, err := p.AppMounts(ra, im)
	if err != nil {
		return stage2.App{}, err
	}
	for _, m := range mounts {
		app.Mounts = append(app.Mounts, stage2.Mount{Source: m.Source, Target: m.Target, FSType: "bind", Recursive: m.Recursive, ReadOnly: m.ReadOnly, CreateDir: true})
	}
	files, err := p.DNSMounts(dnsConfMode)
	if err != nil {
		return stage2.App{}, err
	}
	for _, f := range files {
		app.Mounts = append(app.Mounts, stage2.Mount{Source: f.Source, Target: f.Target, FSType: "bind", ReadOnly: true, CreateFile: true})
	}
	return app, nil
}

// appOf returns what the app runs: the pod manifest's app section, or else
// its image's. A pod manifest may leave the section out; when the image has
// none either there is nothing to run.
func appOf(ra *schema.RuntimeApp, im *schema.ImageManifest) (*types.App, error) {
	if ra.App != nil {
		return ra.App, nil
	}
	if im != nil && im.App != nil {
		return im.App, nil
	}
	return nil, fmt.Errorf("app %s: neither the pod manifest nor its image says what to run: %w", ra.Name, errdefs.ErrInvalid)
}
