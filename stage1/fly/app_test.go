package fly

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/pod"
)

func testImage(app *types.App) *schema.ImageManifest {
	im := schema.BlankImageManifest()
	im.Name = "example.com/img"
	im.App = app
	return im
}

func TestAppOf(t *testing.T) {
	own := &types.App{Exec: types.Exec{"/own"}, User: "1", Group: "1"}
	image := &types.App{Exec: types.Exec{"/image"}, User: "1234", Group: "1234"}
	for _, tc := range []struct {
		name string
		ra   *types.App
		im   *schema.ImageManifest
		want *types.App
	}{
		{"pod manifest wins", own, testImage(image), own},
		{"image when the pod manifest has none", nil, testImage(image), image},
		{"nothing to run", nil, testImage(nil), nil},
		{"no image manifest", nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ra := &schema.RuntimeApp{Name: "app", App: tc.ra}
			got, err := appOf(ra, tc.im)
			if tc.want == nil {
				if !errors.Is(err, errdefs.ErrInvalid) {
					t.Fatalf("got %v, %v; want an invalid error", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// testPod writes a pod directory holding one app, ra, and its image
// manifest.
func testPod(t *testing.T, ra schema.RuntimeApp, im *schema.ImageManifest) *pod.Pod {
	t.Helper()
	dir := t.TempDir()
	pm := schema.BlankPodManifest()
	h, err := types.NewHash("sha512-" + strings.Repeat("ab", 64))
	if err != nil {
		t.Fatal(err)
	}
	ra.Image.ID = *h
	pm.Apps = schema.AppList{ra}
	write := func(path string, v any) {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(contract.PodManifest(dir), pm)
	write(contract.AppImageManifest(dir, ra.Name.String()), im)
	p, err := pod.Load(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnteredAppTakesTheImagesUser(t *testing.T) {
	image := &types.App{Exec: types.Exec{"/bin/sh"}, User: "1234", Group: "1234", SupplementaryGIDs: []int{5}}
	p := testPod(t, schema.RuntimeApp{Name: "app"}, testImage(image))
	a, err := enteredApp(p, "app")
	if err != nil {
		t.Fatal(err)
	}
	if a.User != "1234" || a.Group != "1234" || len(a.SupplementaryGIDs) != 1 {
		t.Fatalf("entered as %q:%q %v, want the image's 1234:1234 [5]", a.User, a.Group, a.SupplementaryGIDs)
	}
	if _, err := enteredApp(p, "other"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a missing app: %v", err)
	}

	own := &types.App{Exec: types.Exec{"/bin/sh"}, User: "7", Group: "8"}
	p = testPod(t, schema.RuntimeApp{Name: "app", App: own}, testImage(image))
	if a, err := enteredApp(p, "app"); err != nil || a.User != "7" || a.Group != "8" {
		t.Fatalf("the pod manifest's user is not used: %v %v", a, err)
	}

	p = testPod(t, schema.RuntimeApp{Name: "app"}, testImage(nil))
	if _, err := enteredApp(p, "app"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("an app with nothing to run: %v", err)
	}
}

func TestAppForWithoutAnAppSection(t *testing.T) {
	ra := schema.RuntimeApp{Name: "app"}
	p := testPod(t, ra, testImage(nil))
	if _, err := appFor(p, &p.Manifest.Apps[0], testImage(nil), ""); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("appFor of an app with nothing to run: %v", err)
	}
	image := &types.App{Exec: types.Exec{"/bin/sh", "-c", "true"}, User: "1234", Group: "1234"}
	app, err := appFor(p, &p.Manifest.Apps[0], testImage(image), "")
	if err != nil {
		t.Fatal(err)
	}
	if app.User != "1234" || app.Group != "1234" || len(app.Exec) != 3 || app.Root != p.AppRoot("app") {
		t.Fatalf("appFor did not take the image's app: %+v", app)
	}
}
