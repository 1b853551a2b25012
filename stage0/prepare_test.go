package stage0

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// fakeTrees is an image store with rendered trees in a temporary
// directory: each image's tree holds rootfs/<its name's last element>.
type fakeTrees struct {
	t         *testing.T
	dir       string
	manifests map[string]*schema.ImageManifest
	// treeErr makes Tree of that image fail.
	treeErr map[string]error
	// held counts the trees handed out and not released yet.
	held, handedOut int
}

func newFakeTrees(t *testing.T) *fakeTrees {
	return &fakeTrees{t: t, dir: t.TempDir(), manifests: map[string]*schema.ImageManifest{}, treeErr: map[string]error{}}
}

// fakeID is a well-formed image ID unique to n.
func fakeID(n int) string { return fmt.Sprintf("sha512-%0128x", n) }

// add stores an image named name whose rootfs holds one file, and returns
// its ID.
func (f *fakeTrees) add(name string, im *schema.ImageManifest) string {
	f.t.Helper()
	id := fakeID(len(f.manifests) + 1)
	if im == nil {
		im = testImage(f.t, name)
	}
	f.manifests[id] = im
	file := filepath.Join(f.treePath(id), "rootfs", filepath.Base(name))
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(name+"\n"), 0o644); err != nil {
		f.t.Fatal(err)
	}
	return id
}

func (f *fakeTrees) treeID(id string) string   { return "deps-" + id }
func (f *fakeTrees) treePath(id string) string { return filepath.Join(f.dir, f.treeID(id)) }

func (f *fakeTrees) Tree(_ context.Context, id string) (TreeRef, func() error, error) {
	if err := f.treeErr[id]; err != nil {
		return TreeRef{}, nil, err
	}
	if _, ok := f.manifests[id]; !ok {
		return TreeRef{}, nil, fmt.Errorf("image %s: %w", id, errdefs.ErrNotFound)
	}
	f.held++
	f.handedOut++
	released := false
	return TreeRef{ID: f.treeID(id), Lowers: []string{filepath.Join(f.treePath(id), "rootfs")}}, func() error {
		if released {
			f.t.Errorf("tree of %s released twice", id)
		}
		released = true
		f.held--
		return nil
	}, nil
}

func (f *fakeTrees) Manifest(id string) (*schema.ImageManifest, error) {
	im, ok := f.manifests[id]
	if !ok {
		return nil, fmt.Errorf("image %s: %w", id, errdefs.ErrNotFound)
	}
	return im, nil
}

// stage1Image is a stage1 image manifest with a run entrypoint.
func stage1Image(t *testing.T, annotations ...types.Annotation) *schema.ImageManifest {
	t.Helper()
	im := schema.BlankImageManifest()
	im.Name = "example.com/stage1"
	im.Annotations = append(types.Annotations{{Name: types.ACIdentifier(contract.Run.Annotation()), Value: "/run"}}, annotations...)
	return im
}

// newPreparingPod is a pod locked in prepare, as NewPod leaves it.
func newPreparingPod(t *testing.T) (*Pod, string) {
	t.Helper()
	podsDir := t.TempDir()
	p, err := NewPod(podsDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, podsDir
}

func readJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func assertFileHolds(t *testing.T, path, want string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != want {
		t.Errorf("%s holds %q, want %q", path, data, want)
	}
}

// Prepare copies the trees into a pod (no overlay) and writes the rkt
// layout: the stage1 manifest and tree, each app's manifest, tree and
// rootfs, the status directories, orbit's record and the pod manifest,
// and releases every tree it held.
func TestPrepareLaysOutPodByCopying(t *testing.T) {
	trees := newFakeTrees(t)
	s1 := trees.add("example.com/stage1", stage1Image(t))
	app := trees.add("example.com/web", nil)
	p, _ := newPreparingPod(t)
	err := Prepare(t.Context(), p, PrepareConfig{
		Trees:         trees,
		Stage1ImageID: s1,
		Stage1Flavour: "nspawn",
		Spec:          PodSpec{Apps: []AppSpec{{ImageID: app, Env: []string{"X=1"}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if trees.held != 0 || trees.handedOut != 2 {
		t.Errorf("%d of %d trees still held after Prepare", trees.held, trees.handedOut)
	}
	var s1m schema.ImageManifest
	readJSONFile(t, p.File("stage1", "manifest"), &s1m)
	if s1m.Name != "example.com/stage1" {
		t.Errorf("stage1 manifest names %s", s1m.Name)
	}
	assertFileHolds(t, p.File("stage1TreeStoreID"), trees.treeID(s1))
	assertFileHolds(t, p.File("stage1", "rootfs", "stage1"), "example.com/stage1\n")
	assertFileHolds(t, p.File("appsinfo", "web", "treeStoreID"), trees.treeID(app))
	var im schema.ImageManifest
	readJSONFile(t, p.File("appsinfo", "web", "manifest"), &im)
	if im.Name != "example.com/web" {
		t.Errorf("app manifest names %s", im.Name)
	}
	readJSONFile(t, p.File("stage1", "rootfs", "opt", "stage2", "web", "manifest"), &im)
	assertFileHolds(t, p.File("stage1", "rootfs", "opt", "stage2", "web", "rootfs", "web"), "example.com/web\n")
	for _, d := range []string{"rkt/status", "rkt/env"} {
		if fi, err := os.Stat(p.File("stage1", "rootfs", d)); err != nil || !fi.IsDir() {
			t.Errorf("stage1 rootfs lacks %s: %v", d, err)
		}
	}
	if _, err := os.Stat(p.File("overlay-prepared")); err == nil {
		t.Errorf("a copied pod says its overlays are prepared")
	}
	rec, err := p.record()
	if err != nil {
		t.Fatal(err)
	}
	if rec.Stage1 != s1 || rec.Stage1Flavour != "nspawn" || rec.Overlay || len(rec.Mounts) != 0 || rec.CreatedAt.IsZero() {
		t.Errorf("record: %+v", rec)
	}
	pm, err := p.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(pm.Apps) != 1 || pm.Apps[0].Name != "web" || pm.Apps[0].Image.ID.String() != app {
		t.Fatalf("pod manifest apps: %+v", pm.Apps)
	}
	if v, ok := pm.Apps[0].App.Environment.Get("X"); !ok || v != "1" {
		t.Errorf("the spec's environment is not in the pod manifest: %v", pm.Apps[0].App.Environment)
	}
	// Prepare leaves the pod where it was: preparing, locked.
	if got, err := Get(filepath.Dir(filepath.Dir(p.Path())), p.UUID); err != nil || got.State != Preparing {
		t.Errorf("after Prepare: %v %v", got, err)
	}
}

// With overlays, Prepare records the mounts to make (the stage1's, then
// each app's) and makes their upper and work directories, but mounts
// nothing: that is Run's job.
func TestPrepareRecordsOverlays(t *testing.T) {
	if !overlaySupported() {
		t.Skip("the kernel has no overlayfs: Prepare copies instead (TestPrepareLaysOutPodByCopying)")
	}
	trees := newFakeTrees(t)
	s1 := trees.add("example.com/stage1", stage1Image(t))
	app := trees.add("example.com/web", nil)
	p, _ := newPreparingPod(t)
	if err := Prepare(t.Context(), p, PrepareConfig{Trees: trees, Stage1ImageID: s1, Spec: PodSpec{Apps: []AppSpec{{ImageID: app, Name: "front"}}}, UseOverlay: true}); err != nil {
		t.Fatal(err)
	}
	rec, err := p.record()
	if err != nil {
		t.Fatal(err)
	}
	if !rec.Overlay || len(rec.Mounts) != 2 {
		t.Fatalf("record: %+v", rec)
	}
	want := []overlayMount{
		{Lower: filepath.Join(trees.treePath(s1), "rootfs"), Upper: "overlay/" + trees.treeID(s1) + "/upper", Work: "overlay/" + trees.treeID(s1) + "/work", Target: "stage1/rootfs"},
		{Lower: filepath.Join(trees.treePath(app), "rootfs"), Upper: "overlay/" + trees.treeID(app) + "/upper/front", Work: "overlay/" + trees.treeID(app) + "/work/front", Target: "stage1/rootfs/opt/stage2/front/rootfs"},
	}
	for i, m := range rec.Mounts {
		if !reflect.DeepEqual(m, want[i]) {
			t.Errorf("mount %d: %+v, want %+v", i, m, want[i])
		}
		for _, d := range []string{m.Upper, m.Work} {
			if fi, err := os.Stat(p.File(d)); err != nil || !fi.IsDir() {
				t.Errorf("overlay directory %s: %v", d, err)
			}
		}
	}
	// What stage0 writes into the stage1 rootfs before it is mounted goes
	// to the stage1's upper directory.
	upper := p.File(rec.Mounts[0].Upper)
	for _, f := range []string{"opt/stage2/front/manifest", "opt/stage2/front/rootfs", "rkt/status", "rkt/env"} {
		if _, err := os.Stat(filepath.Join(upper, f)); err != nil {
			t.Errorf("stage1 upper directory lacks %s: %v", f, err)
		}
	}
	if _, err := os.Stat(p.File("stage1", "rootfs", "stage1")); err == nil {
		t.Errorf("the stage1 tree was copied although overlays are used")
	}
	if _, err := os.Stat(p.File("overlay-prepared")); err != nil {
		t.Errorf("overlay-prepared: %v", err)
	}
	if mounts, err := mountPointsBelow(p.Path()); err != nil || len(mounts) != 0 {
		t.Errorf("Prepare mounted %v (%v)", mounts, err)
	}
}

// A pod manifest given whole (--pod-manifest) is used instead of the spec.
func TestPrepareUsesGivenPodManifest(t *testing.T) {
	trees := newFakeTrees(t)
	s1 := trees.add("example.com/stage1", stage1Image(t))
	app := trees.add("example.com/web", nil)
	pm := schema.BlankPodManifest()
	h, err := types.NewHash(app)
	if err != nil {
		t.Fatal(err)
	}
	pm.Apps = schema.AppList{{Name: "given", Image: schema.RuntimeImage{ID: *h}, App: &types.App{Exec: types.Exec{"/bin/given"}, User: "0", Group: "0"}}}
	p, _ := newPreparingPod(t)
	// The spec names an image the store lacks: it must not be looked at.
	err = Prepare(t.Context(), p, PrepareConfig{Trees: trees, Stage1ImageID: s1, PodManifest: pm, Spec: PodSpec{Apps: []AppSpec{{ImageID: fakeID(99)}}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Apps) != 1 || got.Apps[0].Name != "given" || got.Apps[0].App.Exec[0] != "/bin/given" {
		t.Errorf("pod manifest: %+v", got.Apps)
	}
	assertFileHolds(t, p.File("appsinfo", "given", "treeStoreID"), trees.treeID(app))
}

// Prepare refuses, with the error's class kept, what it cannot make a pod
// of; the pod manifest, which says a pod is complete, is never written
// then, and every tree taken is released.
func TestPrepareRefusals(t *testing.T) {
	type setup struct {
		trees *fakeTrees
		cfg   PrepareConfig
	}
	for _, tc := range []struct {
		name    string
		make    func(t *testing.T) setup
		class   error
		mention string
	}{
		{"stage1 manifest missing", func(t *testing.T) setup {
			trees := newFakeTrees(t)
			app := trees.add("example.com/web", nil)
			return setup{trees, PrepareConfig{Trees: trees, Stage1ImageID: fakeID(42), Spec: PodSpec{Apps: []AppSpec{{ImageID: app}}}}}
		}, errdefs.ErrNotFound, "stage1 image"},
		{"stage1 tree fails", func(t *testing.T) setup {
			trees := newFakeTrees(t)
			s1 := trees.add("example.com/stage1", stage1Image(t))
			trees.treeErr[s1] = fmt.Errorf("rendering: %w", errdefs.ErrBusy)
			return setup{trees, PrepareConfig{Trees: trees, Stage1ImageID: s1, Spec: PodSpec{Apps: []AppSpec{{ImageID: s1}}}}}
		}, errdefs.ErrBusy, "stage1 image"},
		{"app image missing", func(t *testing.T) setup {
			trees := newFakeTrees(t)
			s1 := trees.add("example.com/stage1", stage1Image(t))
			return setup{trees, PrepareConfig{Trees: trees, Stage1ImageID: s1, Spec: PodSpec{Apps: []AppSpec{{ImageID: fakeID(42)}}}}}
		}, errdefs.ErrNotFound, fakeID(42)},
		{"app tree fails", func(t *testing.T) setup {
			trees := newFakeTrees(t)
			s1 := trees.add("example.com/stage1", stage1Image(t))
			app := trees.add("example.com/web", nil)
			trees.treeErr[app] = fmt.Errorf("rendering: %w", errdefs.ErrBusy)
			return setup{trees, PrepareConfig{Trees: trees, Stage1ImageID: s1, Spec: PodSpec{Apps: []AppSpec{{ImageID: app}}}}}
		}, errdefs.ErrBusy, "app web"},
		{"app tree missing on disk", func(t *testing.T) setup {
			trees := newFakeTrees(t)
			s1 := trees.add("example.com/stage1", stage1Image(t))
			app := trees.add("example.com/web", nil)
			if err := os.RemoveAll(trees.treePath(app)); err != nil {
				t.Fatal(err)
			}
			return setup{trees, PrepareConfig{Trees: trees, Stage1ImageID: s1, Spec: PodSpec{Apps: []AppSpec{{ImageID: app}}}}}
		}, errdefs.ErrNotFound, "app web"},
		{"no apps", func(t *testing.T) setup {
			trees := newFakeTrees(t)
			s1 := trees.add("example.com/stage1", stage1Image(t))
			return setup{trees, PrepareConfig{Trees: trees, Stage1ImageID: s1}}
		}, errdefs.ErrInvalid, "app"},
		{"two apps for fly", func(t *testing.T) setup {
			trees := newFakeTrees(t)
			s1 := trees.add("example.com/stage1", stage1Image(t))
			a := trees.add("example.com/a", nil)
			b := trees.add("example.com/b", nil)
			return setup{trees, PrepareConfig{Trees: trees, Stage1ImageID: s1, Stage1Flavour: "fly", Spec: PodSpec{Apps: []AppSpec{{ImageID: a}, {ImageID: b}}}}}
		}, errdefs.ErrInvalid, "fly"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.make(t)
			p, _ := newPreparingPod(t)
			err := Prepare(t.Context(), p, s.cfg)
			if !errors.Is(err, tc.class) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("Prepare: %v, want %v naming %q", err, tc.class, tc.mention)
			}
			if s.trees.held != 0 {
				t.Errorf("%d trees still held after a failed Prepare", s.trees.held)
			}
			if _, err := os.Stat(p.File("pod")); err == nil {
				t.Errorf("a failed Prepare wrote the pod manifest")
			}
		})
	}
}

// Only the process that holds a pod in prepare may prepare it.
func TestPrepareNeedsThePodHeldInPrepare(t *testing.T) {
	trees := newFakeTrees(t)
	s1 := trees.add("example.com/stage1", stage1Image(t))
	app := trees.add("example.com/web", nil)
	cfg := PrepareConfig{Trees: trees, Stage1ImageID: s1, Spec: PodSpec{Apps: []AppSpec{{ImageID: app}}}}
	p, podsDir := newPreparingPod(t)
	seen, err := Get(podsDir, p.UUID) // another process's view: no lock
	if err != nil {
		t.Fatal(err)
	}
	if err := Prepare(t.Context(), seen, cfg); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("Prepare without the lock: %v, want invalid", err)
	}
	if err := Prepare(t.Context(), p, cfg); err != nil {
		t.Fatal(err)
	}
	if err := p.ToPrepared(); err != nil {
		t.Fatal(err)
	}
	if err := Prepare(t.Context(), p, cfg); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("Prepare of a prepared pod: %v, want invalid", err)
	}
	if trees.handedOut != 2 {
		t.Errorf("refused Prepares took trees: %d handed out", trees.handedOut)
	}
}
