package stage0

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/flock"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// Mutable reports whether a pod manifest is a sandbox's, whose apps may
// change while it runs.
func Mutable(pm *schema.PodManifest) bool {
	v, _ := pm.Annotations.Get(contract.AnnotationMutable)
	return v == contract.AnnotationMutableTrue
}

// BuildSandboxManifest is the pod manifest of a sandbox: no apps yet, the
// pod's volumes, ports and annotations, and AnnotationMutable true.
func BuildSandboxManifest(spec PodSpec) (*schema.PodManifest, error) {
	if len(spec.Apps) > 0 {
		return nil, fmt.Errorf("a sandbox starts with no apps: %w", errdefs.ErrInvalid)
	}
	pm := schema.BlankPodManifest()
	pm.Volumes = spec.Volumes
	pm.Ports = spec.Ports
	pm.Annotations = spec.Annotations
	pm.Annotations.Set(contract.AnnotationMutable, contract.AnnotationMutableTrue)
	if _, err := pm.MarshalJSON(); err != nil {
		return nil, fmt.Errorf("pod manifest: %w: %w", err, errdefs.ErrInvalid)
	}
	return pm, nil
}

// AppConfig is how a command changes a running sandbox's apps.
type AppConfig struct {
	Debug bool
	Log   *slog.Logger
}

// appsLock takes the pod's apps lock (contract.AppsLock), waiting until
// ctx ends, once the pod is a running sandbox whose stage1 has the app
// entrypoints; it returns the lock and the pod's stage1.
func appsLock(ctx context.Context, p *Pod) (*flock.Lock, *Stage1, error) {
	if p.State != Running {
		return nil, nil, fmt.Errorf("pod %s is %s, not running: %w", p.UUID, p.State, errdefs.ErrInvalid)
	}
	pm, err := p.Manifest()
	if err != nil {
		return nil, nil, err
	}
	if !Mutable(pm) {
		return nil, nil, fmt.Errorf("pod %s is not a sandbox: its apps were fixed when it was made (use orbit app sandbox): %w", p.UUID, errdefs.ErrInvalid)
	}
	s1, err := Stage1Of(p)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range contract.AppEntrypoints() {
		if _, err := s1.Entrypoint(e); err != nil {
			return nil, nil, err
		}
	}
	l, err := flock.Acquire(ctx, contract.AppsLock(p.Path()), flock.Exclusive)
	if err != nil {
		return nil, nil, fmt.Errorf("pod %s: locking its apps: %w", p.UUID, err)
	}
	// The pod may have ended, or gc moved it, while we waited.
	if q, err := load(p.podsDir, p.UUID); err != nil || q.State != Running || q.dir != p.dir {
		l.Close()
		return nil, nil, fmt.Errorf("pod %s is no longer running: %w", p.UUID, errdefs.ErrInvalid)
	}
	return l, s1, nil
}

// runAppEntrypoint runs an app entrypoint of the pod's stage1 and waits
// for it.
func runAppEntrypoint(p *Pod, s1 *Stage1, e contract.Entrypoint, app string, cfg AppConfig) error {
	entry, err := s1.Entrypoint(e)
	if err != nil {
		return err
	}
	args := contract.AppArgs{Debug: cfg.Debug, App: app, UUID: p.UUID}
	cmd := exec.Command(entry, args.Args()...)
	cmd.Dir = p.Path()
	// It acts under this process's apps lock: it must not outlive it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
			msg = msg[i+1:]
		}
		// The entrypoint's line ends with its error class, as orbit's
		// own do; the class is kept, and said once.
		class := errdefs.ErrInvalid
		for _, c := range []error{errdefs.ErrNotFound, errdefs.ErrBusy, errdefs.ErrInvalid} {
			if strings.HasSuffix(msg, ": "+c.Error()) {
				class = c
				msg = strings.TrimSuffix(msg, ": "+c.Error())
				break
			}
		}
		return fmt.Errorf("pod %s: stage1 %s: %s: %w", p.UUID, e, msg, class)
	}
	return nil
}

// AddAppConfig is one app to add to a sandbox.
type AddAppConfig struct {
	AppConfig
	Trees Trees
	// Spec is the app; its ImageID must be set.
	Spec AppSpec
	// Stdout and Stderr are host files (absolute paths) the app's output
	// is copied to, besides the pod's output; empty for none.
	Stdout, Stderr string
}

// AddApp adds an app to a running sandbox, in the created state, and
// returns its name. The app's files are laid out under staging names and
// renamed into place, then the pod manifest is rewritten with the app
// (the commit point), then stage1 is told: a command killed before the
// commit leaves only staging files (removed by the next change to the
// pod's apps), one killed after it leaves a complete created app. No
// mount is made: the app's rootfs is a copy inside the stage1 rootfs.
func AddApp(ctx context.Context, p *Pod, cfg AddAppConfig) (string, error) {
	l, s1, err := appsLock(ctx, p)
	if err != nil {
		return "", err
	}
	defer l.Close()
	if err := cleanStaging(p); err != nil {
		return "", err
	}
	pm, err := p.Manifest()
	if err != nil {
		return "", err
	}
	im, err := cfg.Trees.Manifest(cfg.Spec.ImageID)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", cfg.Spec.ImageID, err)
	}
	name, err := appName(cfg.Spec.Name, im.Name)
	if err != nil {
		return "", err
	}
	if pm.Apps.Get(name) != nil {
		return "", fmt.Errorf("pod %s has an app named %q already; give another name with --name: %w", p.UUID, name, errdefs.ErrAlreadyExists)
	}
	ra, err := sandboxApp(pm, cfg, name, im)
	if err != nil {
		return "", err
	}
	next := *pm
	next.Apps = append(append(schema.AppList(nil), pm.Apps...), *ra)
	next.Volumes = append(append([]types.Volume(nil), pm.Volumes...), implicitVolumes(pm.Volumes, schema.AppList{*ra}, []*schema.ImageManifest{im})...)
	flavour := ""
	if rec, err := p.record(); err == nil {
		flavour = rec.Stage1Flavour
	}
	if err := ValidatePodManifest(&next, flavourOf(flavour)); err != nil {
		return "", err
	}

	// Lay out the app under staging names.
	tree, release, err := cfg.Trees.Tree(ctx, cfg.Spec.ImageID)
	treeID := tree.ID
	if err != nil {
		return "", fmt.Errorf("app %s: image %s: %w", name, cfg.Spec.ImageID, err)
	}
	defer release()
	stage := contract.AppStagingPrefix + name.String() + "-" + randomSuffix()
	info := filepath.Join(contract.AppsInfo(p.Path()), stage)
	root := contract.InStage1(p.Path(), filepath.Join(contract.Stage1AppsDir, stage))
	fail := func(err error) (string, error) {
		os.RemoveAll(info)
		os.RemoveAll(root)
		return "", err
	}
	if err := writeJSON(filepath.Join(info, "manifest"), im); err != nil {
		return fail(err)
	}
	if err := atomicfile.Replace(filepath.Join(info, "treeStoreID"), []byte(treeID), 0o644); err != nil {
		return fail(err)
	}
	if err := copyLowers(ctx, tree, filepath.Join(root, "rootfs")); err != nil {
		return fail(fmt.Errorf("app %s: copying its rootfs: %w", name, err))
	}
	if err := writeJSON(filepath.Join(root, "manifest"), im); err != nil {
		return fail(err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	// Into place, then the commit.
	forgetApp(p, name.String())
	if err := os.Rename(info, filepath.Dir(contract.AppImageManifest(p.Path(), name.String()))); err != nil {
		return fail(err)
	}
	if err := os.Rename(root, contract.InStage1(p.Path(), filepath.Dir(contract.Stage1AppRootfs(name.String())))); err != nil {
		forgetApp(p, name.String())
		return fail(err)
	}
	if err := writeJSON(contract.PodManifest(p.Path()), &next); err != nil {
		forgetApp(p, name.String())
		return "", err
	}
	if err := runAppEntrypoint(p, s1, contract.AppAdd, name.String(), cfg.AppConfig); err != nil {
		// Undone: the pod manifest first, then the files.
		if werr := writeJSON(contract.PodManifest(p.Path()), pm); werr == nil {
			forgetApp(p, name.String())
		}
		return "", err
	}
	return name.String(), nil
}

// sandboxApp is the runtime app for an added app.
func sandboxApp(pm *schema.PodManifest, cfg AddAppConfig, name types.ACName, im *schema.ImageManifest) (*schema.RuntimeApp, error) {
	id, err := types.NewHash(cfg.Spec.ImageID)
	if err != nil {
		return nil, fmt.Errorf("app %s: image ID %q: %w", name, cfg.Spec.ImageID, errdefs.ErrInvalid)
	}
	app, err := runtimeApp(cfg.Spec, im)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", name, err)
	}
	volumes := map[types.ACName]bool{}
	for _, v := range pm.Volumes {
		volumes[v.Name] = true
	}
	for _, m := range cfg.Spec.Mounts {
		if !volumes[m.Volume] {
			return nil, fmt.Errorf("app %s: --mount names volume %q, which the sandbox was not started with (--volume): %w", name, m.Volume, errdefs.ErrInvalid)
		}
	}
	ra := &schema.RuntimeApp{
		Name:           name,
		Image:          schema.RuntimeImage{Name: &im.Name, ID: *id, Labels: im.Labels},
		App:            app,
		Mounts:         cfg.Spec.Mounts,
		ReadOnlyRootFS: cfg.Spec.ReadOnlyRootfs,
		Annotations:    append(types.Annotations(nil), cfg.Spec.Annotations...),
	}
	for _, l := range []struct{ annotation, path string }{{contract.AnnotationAppStdout, cfg.Stdout}, {contract.AnnotationAppStderr, cfg.Stderr}} {
		if l.path == "" {
			continue
		}
		if !filepath.IsAbs(l.path) {
			return nil, fmt.Errorf("app %s: log file %q is not an absolute path: %w", name, l.path, errdefs.ErrInvalid)
		}
		ra.Annotations.Set(types.ACIdentifier(l.annotation), l.path)
	}
	return ra, nil
}

// StartApp starts a created or exited app of a running sandbox.
func StartApp(ctx context.Context, p *Pod, name string, cfg AppConfig) error {
	return changeApp(ctx, p, name, contract.AppStart, cfg, nil)
}

// StopApp stops a running app of a sandbox (SIGTERM, then SIGKILL after
// the pod's grace period) and returns once its exit status is recorded.
func StopApp(ctx context.Context, p *Pod, name string, cfg AppConfig) error {
	return changeApp(ctx, p, name, contract.AppStop, cfg, nil)
}

// RemoveApp removes an app that is not running from a sandbox: from the
// pod manifest (the commit point), then from stage1, then its files.
func RemoveApp(ctx context.Context, p *Pod, name string, cfg AppConfig) error {
	return changeApp(ctx, p, name, contract.AppRm, cfg, func(pm *schema.PodManifest, s1 *Stage1) error {
		apps, err := p.Apps()
		if err != nil {
			return err
		}
		for _, a := range apps {
			if a.Name == name && a.State == contract.AppRunning {
				return fmt.Errorf("app %s of pod %s is running; stop it first (orbit app stop): %w", name, p.UUID, errdefs.ErrBusy)
			}
		}
		next := *pm
		next.Apps = nil
		for _, ra := range pm.Apps {
			if ra.Name.String() != name {
				next.Apps = append(next.Apps, ra)
			}
		}
		if err := writeJSON(contract.PodManifest(p.Path()), &next); err != nil {
			return err
		}
		if err := runAppEntrypoint(p, s1, contract.AppRm, name, cfg); err != nil {
			return err
		}
		forgetApp(p, name)
		return nil
	})
}

// changeApp runs an app entrypoint for an app of the pod manifest, under
// the apps lock; with do set, do runs instead.
func changeApp(ctx context.Context, p *Pod, name string, e contract.Entrypoint, cfg AppConfig, do func(*schema.PodManifest, *Stage1) error) error {
	l, s1, err := appsLock(ctx, p)
	if err != nil {
		return err
	}
	defer l.Close()
	pm, err := p.Manifest()
	if err != nil {
		return err
	}
	if pm.Apps.Get(types.ACName(name)) == nil {
		return fmt.Errorf("pod %s has no app %q: %w", p.UUID, name, errdefs.ErrNotFound)
	}
	if do != nil {
		return do(pm, s1)
	}
	return runAppEntrypoint(p, s1, e, name, cfg)
}

// cleanStaging removes what a killed command left: staging directories,
// and the files of apps the pod manifest does not name.
func cleanStaging(p *Pod) error {
	pm, err := p.Manifest()
	if err != nil {
		return err
	}
	for _, dir := range []string{contract.AppsInfo(p.Path()), contract.InStage1(p.Path(), contract.Stage1AppsDir)} {
		ents, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		for _, e := range ents {
			n := e.Name()
			if strings.HasPrefix(n, contract.AppStagingPrefix) {
				if err := os.RemoveAll(filepath.Join(dir, n)); err != nil {
					return err
				}
				continue
			}
			if pm.Apps.Get(types.ACName(n)) == nil {
				forgetApp(p, n)
			}
		}
	}
	return nil
}

// forgetApp removes an app's files from the pod directory (not its
// entry in the pod manifest).
func forgetApp(p *Pod, name string) {
	if name == "" || strings.ContainsAny(name, "/") {
		return
	}
	for _, path := range []string{
		filepath.Dir(contract.AppImageManifest(p.Path(), name)),
		contract.InStage1(p.Path(), filepath.Dir(contract.Stage1AppRootfs(name))),
		contract.InStage1(p.Path(), contract.Stage1AppStatus(name)),
		contract.InStage1(p.Path(), contract.Stage1AppStatusJSON(name)),
		contract.InStage1(p.Path(), contract.Stage1AppPid(name)),
	} {
		os.RemoveAll(path)
	}
}

func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// AppInfo is one app of a pod as its directory records it.
type AppInfo struct {
	Name    string `json:"name"`
	ImageID string `json:"imageID"`
	// State is contract.AppCreated, AppRunning or AppExited.
	State string `json:"state"`
	Pid   int    `json:"pid,omitempty"`
	// ExitCode is set once the app has exited (and stays set when it is
	// started again, until it exits again).
	ExitCode   *int      `json:"exitCode,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
	FinishedAt time.Time `json:"finishedAt,omitzero"`
}

// Apps reads the state of every app of the pod from its directory: an app
// whose pid file is there runs while the pod does; one with an exit
// status and no pid file has exited; one with neither was created and has
// not run. When the pod is no longer running, an app it was running has
// exited too (its exit status unknown if stage1 did not record one).
func (p *Pod) Apps() ([]AppInfo, error) {
	pm, err := p.Manifest()
	if err != nil {
		return nil, err
	}
	var out []AppInfo
	for _, ra := range pm.Apps {
		a := AppInfo{Name: ra.Name.String(), ImageID: ra.Image.ID.String(), State: contract.AppCreated}
		var st struct {
			ExitCode  int       `json:"exitCode"`
			StartedAt time.Time `json:"startedAt"`
			ExitedAt  time.Time `json:"exitedAt"`
		}
		exited := false
		if data, err := os.ReadFile(p.stage1Data(contract.Stage1AppStatusJSON(a.Name))); err == nil && json.Unmarshal(data, &st) == nil {
			exited = true
			code := st.ExitCode
			a.ExitCode, a.StartedAt, a.FinishedAt = &code, st.StartedAt, st.ExitedAt
		} else if data, err := os.ReadFile(p.stage1Data(contract.Stage1AppStatus(a.Name))); err == nil {
			if code, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
				exited = true
				a.ExitCode = &code
			}
		}
		pidPath := p.stage1Data(contract.Stage1AppPid(a.Name))
		if data, err := os.ReadFile(pidPath); err == nil {
			if p.State == Running {
				a.State = contract.AppRunning
				a.Pid, _ = strconv.Atoi(strings.TrimSpace(string(data)))
				a.ExitCode, a.FinishedAt = nil, time.Time{}
				if fi, err := os.Stat(pidPath); err == nil {
					a.StartedAt = fi.ModTime()
				}
			} else {
				a.State = contract.AppExited
			}
		} else if exited {
			a.State = contract.AppExited
		}
		out = append(out, a)
	}
	return out, nil
}
