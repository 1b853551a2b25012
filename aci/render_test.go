package aci

import (
	"bytes"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// memRegistry is an in-memory image store for rendering tests.
type memRegistry struct {
	order  []string // IDs in the order stored: later is newer
	images map[string]*schema.ImageManifest
	blobs  map[string][]byte
}

func newMemRegistry() *memRegistry {
	return &memRegistry{images: map[string]*schema.ImageManifest{}, blobs: map[string][]byte{}}
}

func (r *memRegistry) Manifest(id string) (*schema.ImageManifest, error) {
	im, ok := r.images[id]
	if !ok {
		return nil, fmt.Errorf("image %s: %w", id, errdefs.ErrNotFound)
	}
	return im, nil
}

func (r *memRegistry) ResolveName(name types.ACIdentifier, labels types.Labels) (string, error) {
	for i := len(r.order) - 1; i >= 0; i-- {
		im := r.images[r.order[i]]
		if im.Name == name && MatchLabels(im.Labels, labels) {
			return r.order[i], nil
		}
	}
	return "", fmt.Errorf("no image %s: %w", name, errdefs.ErrNotFound)
}

func (r *memRegistry) OpenBlob(id string) (io.ReadCloser, error) {
	b, ok := r.blobs[id]
	if !ok {
		return nil, fmt.Errorf("blob %s: %w", id, errdefs.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

// add stores an image made of a manifest (name plus extra fields) and
// rootfs entries, and returns its ID.
func (r *memRegistry) add(t *testing.T, name string, extra map[string]any, entries ...ent) string {
	t.Helper()
	m := manifestJSON(t, name, extra)
	blob := buildTar(t, append([]ent{file("manifest", m), dir("rootfs")}, entries...)...)
	h := sha512.New()
	h.Write(blob)
	id := ImageID(h)
	im := mustManifest(t, m)
	r.order = append(r.order, id)
	r.images[id] = im
	r.blobs[id] = blob
	return id
}

func deps(names ...string) map[string]any {
	var d []map[string]any
	for _, n := range names {
		d = append(d, map[string]any{"imageName": n})
	}
	return map[string]any{"dependencies": d}
}

func render(t *testing.T, reg Registry, id string) (string, []string) {
	t.Helper()
	dest := t.TempDir()
	chain, err := Render(reg, id, dest, RenderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return dest, chain
}

func TestRenderThreeLevels(t *testing.T) {
	reg := newMemRegistry()
	c := reg.add(t, "example.com/c", nil,
		dir("rootfs/bin"), file("rootfs/bin/sh", "sh from c"), dir("rootfs/lib"), file("rootfs/lib/x", "x from c"), file("rootfs/etc/c", "c"))
	b := reg.add(t, "example.com/b", deps("example.com/c"),
		dir("rootfs/lib"), file("rootfs/lib/x", "x from b"), file("rootfs/etc/b", "b"))
	a := reg.add(t, "example.com/a", deps("example.com/b"), file("rootfs/app", "a"), file("rootfs/etc/a", "a"))

	chain, err := DependencyChain(reg, a)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(chain, ",") != strings.Join([]string{a, b, c}, ",") {
		t.Fatalf("chain %v, want a, b, c", chain)
	}
	dest, rchain := render(t, reg, a)
	if strings.Join(rchain, ",") != strings.Join(chain, ",") {
		t.Errorf("Render chain %v differs from DependencyChain", rchain)
	}
	if got := mustManifest(t, readFile(t, filepath.Join(dest, "manifest"))); got.Name != "example.com/a" {
		t.Errorf("rendered manifest is %s's", got.Name)
	}
	root := filepath.Join(dest, "rootfs")
	for p, want := range map[string]string{"app": "a", "etc/a": "a", "etc/b": "b", "etc/c": "c", "lib/x": "x from b", "bin/sh": "sh from c"} {
		if got := readFile(t, filepath.Join(root, p)); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
}

func TestRenderLaterDependencyWins(t *testing.T) {
	reg := newMemRegistry()
	reg.add(t, "example.com/first", nil, file("rootfs/f", "first"), file("rootfs/only-first", "1"))
	reg.add(t, "example.com/second", nil, file("rootfs/f", "second"))
	a := reg.add(t, "example.com/top", deps("example.com/first", "example.com/second"))
	dest, chain := render(t, reg, a)
	if len(chain) != 3 || reg.images[chain[1]].Name != "example.com/first" {
		t.Errorf("chain not in manifest order: %v", chain)
	}
	if got := readFile(t, filepath.Join(dest, "rootfs/f")); got != "second" {
		t.Errorf("f = %q: appc lays later dependencies over earlier ones", got)
	}
	mustExist(t, filepath.Join(dest, "rootfs/only-first"))
}

func TestRenderLabelsAndImageIDs(t *testing.T) {
	reg := newMemRegistry()
	label := func(v string) map[string]any {
		return map[string]any{"labels": []map[string]string{{"name": "os", "value": "linux"}, {"name": "version", "value": v}}}
	}
	v1 := reg.add(t, "example.com/base", label("1"), file("rootfs/version", "1"))
	v2 := reg.add(t, "example.com/base", label("2"), file("rootfs/version", "2"))
	other := reg.add(t, "example.com/other", nil)

	dep := func(d map[string]any) map[string]any { return map[string]any{"dependencies": []map[string]any{d}} }
	for _, tc := range []struct {
		name string
		dep  map[string]any
		want string // the version rendered, or an error class
	}{
		{"label v1", map[string]any{"imageName": "example.com/base", "labels": []map[string]string{{"name": "version", "value": "1"}}}, "1"},
		{"no labels picks the newest", map[string]any{"imageName": "example.com/base"}, "2"},
		{"by image ID", map[string]any{"imageName": "example.com/base", "imageID": v1}, "1"},
		{"missing label value", map[string]any{"imageName": "example.com/base", "labels": []map[string]string{{"name": "version", "value": "3"}}}, "notfound"},
		{"image ID of another name", map[string]any{"imageName": "example.com/base", "imageID": other}, "invalid"},
		{"image ID with other labels", map[string]any{"imageName": "example.com/base", "imageID": v2, "labels": []map[string]string{{"name": "version", "value": "1"}}}, "invalid"},
		{"unknown image ID", map[string]any{"imageName": "example.com/base", "imageID": "sha512-" + strings.Repeat("ab", 64)}, "notfound"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			top := reg.add(t, "example.com/top-"+strings.ToLower(strings.ReplaceAll(tc.name, " ", "-")), dep(tc.dep))
			dest := t.TempDir()
			_, err := Render(reg, top, dest, RenderOptions{})
			switch tc.want {
			case "notfound":
				if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "example.com/base") {
					t.Fatalf("error %v, want ErrNotFound naming example.com/base", err)
				}
			case "invalid":
				wantInvalid(t, err, "example.com/base")
			default:
				if err != nil {
					t.Fatal(err)
				}
				if got := readFile(t, filepath.Join(dest, "rootfs/version")); got != tc.want {
					t.Errorf("rendered version %q, want %q", got, tc.want)
				}
			}
		})
	}
}

func TestRenderPathWhitelist(t *testing.T) {
	t.Run("top image", func(t *testing.T) {
		reg := newMemRegistry()
		reg.add(t, "example.com/base", nil,
			dir("rootfs/bin"), file("rootfs/bin/sh", "sh"), file("rootfs/bin/ls", "ls"),
			dir("rootfs/etc"), file("rootfs/etc/keep", "k"), file("rootfs/etc/drop", "d"), dir("rootfs/var"))
		extra := deps("example.com/base")
		extra["pathWhitelist"] = []string{"/bin/sh", "/etc/keep", "/app"}
		a := reg.add(t, "example.com/app", extra, file("rootfs/app", "app"), file("rootfs/stray", "s"))
		dest, _ := render(t, reg, a)
		root := filepath.Join(dest, "rootfs")
		for _, p := range []string{"bin/sh", "etc/keep", "app"} {
			mustExist(t, filepath.Join(root, p))
		}
		for _, p := range []string{"bin/ls", "etc/drop", "var", "stray"} {
			mustNotExist(t, filepath.Join(root, p))
		}
	})
	t.Run("middle image", func(t *testing.T) {
		reg := newMemRegistry()
		reg.add(t, "example.com/c", nil, file("rootfs/b", "b from c"), file("rootfs/c", "c"))
		extra := deps("example.com/c")
		extra["pathWhitelist"] = []string{"/b", "/b3"}
		reg.add(t, "example.com/b", extra, file("rootfs/b2", "b2"), file("rootfs/b3", "b3"))
		a := reg.add(t, "example.com/a", deps("example.com/b"), file("rootfs/a", "a"))
		dest, _ := render(t, reg, a)
		root := filepath.Join(dest, "rootfs")
		if got := readFile(t, filepath.Join(root, "b")); got != "b from c" {
			t.Errorf("b = %q", got)
		}
		mustExist(t, filepath.Join(root, "a"))  // above the whitelist
		mustExist(t, filepath.Join(root, "b3")) // whitelisted by its own image
		mustNotExist(t, filepath.Join(root, "b2"))
		mustNotExist(t, filepath.Join(root, "c"))
	})
}

func TestRenderLayeringConflicts(t *testing.T) {
	reg := newMemRegistry()
	reg.add(t, "example.com/lower", nil,
		dir("rootfs/lib"), file("rootfs/lib/libc.so", "libc"),
		dir("rootfs/usr"), dir("rootfs/usr/lib"), file("rootfs/usr/lib/ld.so", "ld"),
		dir("rootfs/etc"), dir("rootfs/etc/conf"), file("rootfs/etc/conf/inner", "inner"),
		file("rootfs/opt", "a file in the lower image"),
		dir("rootfs/bin"), file("rootfs/bin/tool", "lower tool"), hardlink("rootfs/bin/tool-link", "rootfs/bin/tool"),
	)
	a := reg.add(t, "example.com/upper", deps("example.com/lower"),
		symlink("rootfs/lib", "usr/lib"),
		dir("rootfs/etc"), file("rootfs/etc/conf", "a file in the upper image"),
		dir("rootfs/opt"), file("rootfs/opt/x", "x"),
		dir("rootfs/bin"), file("rootfs/bin/tool", "upper tool"),
	)
	dest, _ := render(t, reg, a)
	root := filepath.Join(dest, "rootfs")
	if target, err := os.Readlink(filepath.Join(root, "lib")); err != nil || target != "usr/lib" {
		t.Errorf("lib: %q %v", target, err)
	}
	mustNotExist(t, filepath.Join(root, "usr/lib/libc.so")) // not written through the upper symlink
	mustExist(t, filepath.Join(root, "usr/lib/ld.so"))
	if got := readFile(t, filepath.Join(root, "etc/conf")); got != "a file in the upper image" {
		t.Errorf("etc/conf = %q", got)
	}
	if fi := mustExist(t, filepath.Join(root, "opt")); !fi.IsDir() {
		t.Errorf("opt is %v", fi.Mode())
	}
	if got := readFile(t, filepath.Join(root, "bin/tool")); got != "upper tool" {
		t.Errorf("bin/tool = %q", got)
	}
	if got := readFile(t, filepath.Join(root, "bin/tool-link")); got != "lower tool" {
		t.Errorf("bin/tool-link = %q: a hard link keeps its own image's data", got)
	}
}

func TestRenderCycle(t *testing.T) {
	reg := newMemRegistry()
	reg.add(t, "example.com/b", deps("example.com/a"))
	a := reg.add(t, "example.com/a", deps("example.com/b"))
	_, err := DependencyChain(reg, a)
	wantInvalid(t, err, "example.com/a")
	_, err = Render(reg, a, t.TempDir(), RenderOptions{})
	wantInvalid(t, err)

	self := reg.add(t, "example.com/self", deps("example.com/self"))
	_, err = DependencyChain(reg, self)
	wantInvalid(t, err)
}

func TestRenderMissingDependency(t *testing.T) {
	reg := newMemRegistry()
	a := reg.add(t, "example.com/a", deps("example.com/absent"))
	_, err := DependencyChain(reg, a)
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "example.com/absent") {
		t.Fatalf("error %v, want ErrNotFound naming the dependency", err)
	}
}

// TestRenderVerifiesBlobs pins what rendering promises about a blob that
// changed on disk after it entered the store: with Verify the render
// fails; without it the blob is trusted (the store verified it on import
// and only root can write it), but a truncated blob still fails.
func TestRenderVerifiesBlobs(t *testing.T) {
	reg := newMemRegistry()
	base := reg.add(t, "example.com/base", nil, file("rootfs/payload", "original"))
	a := reg.add(t, "example.com/a", deps("example.com/base"), file("rootfs/a", "a"))
	good := reg.blobs[base]
	reg.blobs[base] = bytes.Replace(good, []byte("original"), []byte("tamperd!"), 1)
	dest := t.TempDir()
	_, err := Render(reg, a, dest, RenderOptions{Verify: true})
	// Hashed while extracted: the render fails, and its callers (the
	// store's trees, image render) remove the partial tree in dest.
	wantInvalid(t, err, base, "hashes to")

	trusted := t.TempDir()
	if _, err := Render(reg, a, trusted, RenderOptions{}); err != nil {
		t.Fatalf("trusted render: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(trusted, "rootfs", "payload")); string(got) != "tamperd!" {
		t.Fatalf("trusted render wrote %q, want the blob's content as stored", got)
	}

	reg.blobs[base] = good[:len(good)/2]
	if _, err := Render(reg, a, t.TempDir(), RenderOptions{}); err == nil {
		t.Fatal("a truncated blob rendered without an error")
	}

	_, err = Render(reg, "sha512-short", t.TempDir(), RenderOptions{})
	wantInvalid(t, err)
}
