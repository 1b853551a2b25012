package tests

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ociLayersImage builds an image of layers (lowest first) that runs
// "/bin/sh -c CMD" as root.
func ociLayersImage(t testing.TB, cmd string, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config.Entrypoint = []string{"/bin/sh", "-c"}
	cfg.Config.Cmd = []string{cmd}
	cfg.Config.Env = []string{"PATH=/bin"}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// ociLayersPair is two images on one busybox base layer: A deletes a file
// and empties a directory its middle layer made; B adds a file of its own.
type ociLayersPair struct {
	a, b v1.Image
	base string // the base layer's diff ID hex
	// aOnly and bOnly are the diff IDs (hex) of the layers only A, or only
	// B, has.
	aOnly, bOnly []string
}

const (
	ociLayersCmdA  = "ls /opq; test -e /etc/doomed && echo doomed-present || echo doomed-absent; cat /srv/hello"
	ociLayersWantA = "new\ndoomed-absent\nhello from A\n"
	ociLayersCmdB  = "cat /srv/b; test -e /opq && echo opq-present || echo opq-absent"
	ociLayersWantB = "this is B\nopq-absent\n"
)

func ociLayersImages(t testing.TB) ociLayersPair {
	t.Helper()
	base := ociDirLayer(t, busyboxRootfs(t))
	middle := ociLayer(t,
		ociTarEntry{name: "etc/doomed", body: "delete me\n"},
		ociTarEntry{name: "opq/"},
		ociTarEntry{name: "opq/old", body: "old\n"},
		ociTarEntry{name: "opq/sub/"},
		ociTarEntry{name: "opq/sub/older", body: "older\n"},
	)
	top := ociLayer(t,
		ociTarEntry{name: "etc/.wh.doomed"},
		ociTarEntry{name: "opq/"},
		ociTarEntry{name: "opq/.wh..wh..opq"},
		ociTarEntry{name: "opq/new", body: "new\n"},
		ociTarEntry{name: "srv/"},
		ociTarEntry{name: "srv/hello", body: "hello from A\n"},
	)
	onlyB := ociLayer(t, ociTarEntry{name: "srv/"}, ociTarEntry{name: "srv/b", body: "this is B\n"})
	hex := func(l v1.Layer) string {
		d, err := l.DiffID()
		if err != nil {
			t.Fatal(err)
		}
		return d.Hex
	}
	return ociLayersPair{
		a:     ociLayersImage(t, ociLayersCmdA, base, middle, top),
		b:     ociLayersImage(t, ociLayersCmdB, base, onlyB),
		base:  hex(base),
		aOnly: []string{hex(middle), hex(top)},
		bOnly: []string{hex(onlyB)},
	}
}

// ociLayersStored lists the layer trees and the layer blobs in the store.
func ociLayersStored(t testing.TB, e *env) (trees, blobs []string) {
	t.Helper()
	list := func(dir string) []string {
		entries, err := os.ReadDir(filepath.Join(e.Dir, "cas", dir))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		var names []string
		for _, en := range entries {
			names = append(names, en.Name())
		}
		sort.Strings(names)
		return names
	}
	return list("layertrees"), list(filepath.Join("layers", "sha256"))
}

// ociLayersStat returns the inode and modification time of a layer tree's
// root filesystem: they change if it is extracted again.
func ociLayersStat(t testing.TB, e *env, hex string) [2]int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(e.Dir, "cas", "layertrees", hex, "rootfs"), &st); err != nil {
		t.Fatalf("layer tree %s: %v", hex, err)
	}
	return [2]int64{int64(st.Ino), st.Mtim.Nano()}
}

func ociLayersHas(names []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, n := range names {
			found = found || n == w
		}
		if !found {
			return false
		}
	}
	return true
}

// TestOCILayersShared pulls two images sharing a base layer from a
// registry: the base is downloaded and extracted once, the apps run on
// overlays of the layer trees (and, flattened, without overlay) with the
// whiteout and the opaque directory honoured, and removing the images
// removes each layer exactly when no image uses it any more.
func TestOCILayersShared(t *testing.T) {
	t.Parallel()
	pair := ociLayersImages(t)
	r := ociStartRegistry(t, ociRegistryOptions{})
	r.push(t, ociWriteLayout(t, pair.a, "v1"), "demo/a:v1")
	r.push(t, ociWriteLayout(t, pair.b, "v1"), "demo/b:v1")
	refA, refB := "docker://"+r.host+"/demo/a:v1", "docker://"+r.host+"/demo/b:v1"
	e := newEnv(t)
	fetch := func(ref string) (string, string) {
		t.Helper()
		res := r.orbit(e, "fetch", "--debug", "--insecure-options=image,http", ref)
		if res.Code != 0 {
			t.Fatalf("fetch %s: %s", ref, res)
		}
		return strings.TrimSpace(res.Stdout), res.Stderr
	}
	idA, logA := fetch(refA)
	if !strings.Contains(logA, "extracted layer") || !strings.Contains(logA, pair.base) {
		t.Fatalf("the first fetch did not say it extracted the base layer:\n%s", logA)
	}
	before := ociLayersStat(t, e, pair.base)
	idB, logB := fetch(refB)
	// The second image reuses the base layer's tree: not extracted again.
	if !strings.Contains(logB, "layer already extracted") {
		t.Fatalf("the second fetch did not reuse the base layer:\n%s", logB)
	}
	for _, line := range strings.Split(logB, "\n") {
		if strings.Contains(line, "extracted layer") && strings.Contains(line, pair.base) {
			t.Fatalf("the second fetch extracted the shared base layer again: %s", line)
		}
	}
	if after := ociLayersStat(t, e, pair.base); after != before {
		t.Fatalf("the base layer's tree was made again: inode and mtime %v, then %v", before, after)
	}
	// image list counts an OCI image's layers in its size.
	var listed []struct {
		ID   string `json:"id"`
		Size int64  `json:"size"`
	}
	if err := json.Unmarshal([]byte(e.mustRun("image", "list", "--format=json").Stdout), &listed); err != nil {
		t.Fatal(err)
	}
	for _, img := range listed {
		if img.Size < 500<<10 {
			t.Fatalf("image list: %s is %d bytes, less than its busybox layer", img.ID, img.Size)
		}
	}
	trees, blobs := ociLayersStored(t, e)
	if len(trees) != 4 || len(blobs) != 4 || !ociLayersHas(trees, append(append([]string{pair.base}, pair.aOnly...), pair.bOnly...)...) {
		t.Fatalf("want the 4 distinct layers stored once each, have trees %v and blobs %v", trees, blobs)
	}

	// Run on overlays of the layer trees, the top layer first.
	uuid := strings.TrimSpace(e.mustRun("prepare", "--stage1-name=fly", idA).Stdout)
	data, err := os.ReadFile(filepath.Join(e.Dir, "pods", "prepared", uuid, "orbit.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Mounts []struct {
			Lowers []string `json:"lowers"`
			Target string   `json:"target"`
		} `json:"mounts"`
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	last := rec.Mounts[len(rec.Mounts)-1]
	if len(last.Lowers) != 3 || !strings.HasSuffix(last.Lowers[0], pair.aOnly[1]+"/rootfs") || !strings.HasSuffix(last.Lowers[2], pair.base+"/rootfs") {
		t.Fatalf("the app's rootfs is not an overlay of its 3 layer trees, top first: %s", data)
	}
	if res := e.mustRun("run-prepared", uuid); !strings.Contains(res.Stdout, ociLayersWantA) {
		t.Fatalf("overlay: want %q in\n%s", ociLayersWantA, res)
	}
	// The flattened path honours the whiteout and the opaque directory too.
	if res := e.mustRun("run", "--stage1-name=fly", "--no-overlay", idA); !strings.Contains(res.Stdout, ociLayersWantA) {
		t.Fatalf("--no-overlay: want %q in\n%s", ociLayersWantA, res)
	}
	dir := filepath.Join(t.TempDir(), "rendered")
	e.mustRun("image", "render", "--rootfs-only", idA, dir)
	if got := ociLayersList(t, filepath.Join(dir, "opq")); got != "new" {
		t.Fatalf("image render: /opq holds %q, want only new", got)
	}
	if _, err := os.Lstat(filepath.Join(dir, "etc", "doomed")); !os.IsNotExist(err) {
		t.Fatalf("image render: /etc/doomed is there (%v)", err)
	}
	if res := e.mustRun("run", "--stage1-name=fly", idB); !strings.Contains(res.Stdout, ociLayersWantB) {
		t.Fatalf("B: want %q in\n%s", ociLayersWantB, res)
	}

	// Removing A keeps the layer B shares, and B runs. (The pods go first:
	// a tree a pod uses keeps its layers, see TestOCILayersPodKeepsLayers.)
	e.mustRun("gc", "--grace-period=0s")
	e.mustRun("image", "rm", idA)
	trees, blobs = ociLayersStored(t, e)
	if len(trees) != 2 || len(blobs) != 2 || !ociLayersHas(trees, pair.base, pair.bOnly[0]) {
		t.Fatalf("after removing A: want B's 2 layers, have trees %v and blobs %v", trees, blobs)
	}
	if res := e.mustRun("run", "--stage1-name=fly", idB); !strings.Contains(res.Stdout, ociLayersWantB) {
		t.Fatalf("B after removing A: %s", res)
	}
	// Removing B too removes every layer.
	e.mustRun("gc", "--grace-period=0s")
	e.mustRun("image", "rm", idB)
	if trees, blobs = ociLayersStored(t, e); len(trees) != 0 || len(blobs) != 0 {
		t.Fatalf("no image left, yet layers are: trees %v, blobs %v", trees, blobs)
	}

	// gc does the same.
	g := newEnv(t)
	for _, ref := range []string{refA, refB} {
		if res := r.orbit(g, "fetch", "--insecure-options=image,http", ref); res.Code != 0 {
			t.Fatalf("fetch %s: %s", ref, res)
		}
	}
	g.mustRun("image", "gc")
	if trees, blobs = ociLayersStored(t, g); len(trees) != 4 || len(blobs) != 4 {
		t.Fatalf("gc removed layers images use: trees %v, blobs %v", trees, blobs)
	}
	g.mustRun("image", "gc", "--grace-period=0s")
	if out := g.mustRun("image", "list", "--no-legend").Stdout; out != "" {
		t.Fatalf("images left: %s", out)
	}
	if trees, blobs = ociLayersStored(t, g); len(trees) != 0 || len(blobs) != 0 {
		t.Fatalf("gc left layers no image uses: trees %v, blobs %v", trees, blobs)
	}
}

func ociLayersList(t testing.TB, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	return strings.Join(names, " ")
}

// TestOCILayersPodKeepsLayers removes the image of a prepared pod: its
// layers stay while the pod uses them, and go with it.
func TestOCILayersPodKeepsLayers(t *testing.T) {
	t.Parallel()
	pair := ociLayersImages(t)
	e := newEnv(t)
	ref := "oci:" + ociWriteLayout(t, pair.a, "v1") + ":v1"
	id := strings.TrimSpace(e.mustRun("fetch", "--insecure-options=image", ref).Stdout)
	uuid := strings.TrimSpace(e.mustRun("prepare", "--stage1-name=fly", id).Stdout)
	e.mustRun("image", "rm", id)
	e.mustRun("image", "gc", "--grace-period=0s")
	if trees, _ := ociLayersStored(t, e); len(trees) != 3 {
		t.Fatalf("the layers of a prepared pod's image were removed: %v", trees)
	}
	if res := e.mustRun("run-prepared", uuid); !strings.Contains(res.Stdout, ociLayersWantA) {
		t.Fatalf("run-prepared after image rm: %s", res)
	}
	e.mustRun("gc", "--grace-period=0s")
	e.mustRun("image", "gc", "--grace-period=0s")
	if trees, blobs := ociLayersStored(t, e); len(trees) != 0 || len(blobs) != 0 {
		t.Fatalf("the pod is gone, its layers are not: trees %v, blobs %v", trees, blobs)
	}
}

// TestOCILayersFetchDuringGC fetches an image again and again while image
// gc runs in a loop: gc never takes a layer from under a fetch.
func TestOCILayersFetchDuringGC(t *testing.T) {
	t.Parallel()
	pair := ociLayersImages(t)
	e := newEnv(t)
	refA := "oci:" + ociWriteLayout(t, pair.a, "v1") + ":v1"
	refB := "oci:" + ociWriteLayout(t, pair.b, "v1") + ":v1"
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
				e.runQuiet("image", "gc")
			}
		}
	}()
	for range 4 {
		idA := strings.TrimSpace(e.mustRun("fetch", "--insecure-options=image", refA).Stdout)
		idB := strings.TrimSpace(e.mustRun("fetch", "--insecure-options=image", refB).Stdout)
		e.mustRun("image", "rm", idA)
		if res := e.mustRun("run", "--stage1-name=fly", idB); !strings.Contains(res.Stdout, ociLayersWantB) {
			close(stop)
			t.Fatalf("B: %s", res)
		}
		e.mustRun("image", "rm", idB)
	}
	close(stop)
	<-done
}

// TestOCILayersHostile feeds hostile layers to the layer extraction: each
// is a one-line error, and nothing of the image stays in the store.
func TestOCILayersHostile(t *testing.T) {
	t.Parallel()
	pair := ociLayersImages(t)
	hardlink := func() v1.Layer {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: "srv/", Typeflag: tar.TypeDir, Mode: 0o755})
		// bin/busybox is in the base layer, not in this one.
		tw.WriteHeader(&tar.Header{Name: "srv/stolen", Typeflag: tar.TypeLink, Linkname: "bin/busybox"})
		tw.Close()
		data := buf.Bytes()
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	hostile := map[string]struct {
		layer v1.Layer
		want  string
	}{
		"whiteout-dotdot":   {ociLayer(t, ociTarEntry{name: "srv/.wh.."}), "whiteout names no file"},
		"whiteout-escaping": {ociLayer(t, ociTarEntry{name: "srv/../../.wh.etc"}), "path escapes the image root"},
		"opaque-escaping":   {ociLayer(t, ociTarEntry{name: "../.wh..wh..opq"}), "path escapes the image root"},
		"entry-escaping":    {ociLayer(t, ociTarEntry{name: "srv/../../../escaped", body: "x"}), "path escapes the image root"},
		"hardlink-across":   {hardlink(), "not an earlier entry of the same layer"},
	}
	for what, h := range hostile {
		t.Run(what, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			img, err := mutate.AppendLayers(pair.b, h.layer)
			if err != nil {
				t.Fatal(err)
			}
			dir := ociWriteLayout(t, img, "v1")
			ociRefused(t, e, e.run("fetch", "--insecure-options=image", "oci:"+dir+":v1"), h.want)
			// Of the hostile layer nothing is left, not even a partial
			// tree (good layers may stay, complete, for another attempt).
			bad, _ := h.layer.DiffID()
			trees, _ := ociLayersStored(t, e)
			for _, tree := range trees {
				if strings.HasPrefix(tree, ".") || tree == bad.Hex {
					t.Fatalf("a refused layer left %s in the store", tree)
				}
			}
		})
	}
}

// TestOCILayersPodManifestReference names an image by an OCI reference in
// a pod manifest, which appc image names cannot hold: a one-line error
// saying the name to use once the image is fetched, before anything is
// fetched or a pod made.
func TestOCILayersPodManifestReference(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for ref, want := range map[string]string{
		"docker://127.0.0.1:5000/demo/app:v1": `{"name": "127.0.0.1_5000/demo/app", "labels": [{"name": "version", "value": "v1"}]}`,
		"docker://busybox":                    `{"name": "registry-1.docker.io/library/busybox", "labels": [{"name": "version", "value": "latest"}]}`,
		"oci:/srv/layout:v2":                  `{"name": "oci/layout", "labels": [{"name": "version", "value": "v2"}]}`,
	} {
		pm := filepath.Join(t.TempDir(), "pod.json")
		writeFile(t, pm, `{"acKind":"PodManifest","acVersion":"0.8.11","apps":[{"name":"app","image":{"name":"`+ref+`"}}]}`)
		for _, cmd := range []string{"run", "prepare"} {
			r := e.run(cmd, "--stage1-name=fly", "--pod-manifest="+pm)
			lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
			if r.Code == 0 || len(lines) != 1 || !strings.Contains(lines[0], "is an OCI reference") || !strings.Contains(lines[0], want) {
				t.Fatalf("%s --pod-manifest naming %s: want one line naming %s: %s", cmd, ref, want, r)
			}
		}
	}
	if out := e.mustRun("list", "--no-legend").Stdout; out != "" {
		t.Fatalf("a pod was made: %s", out)
	}
}

// TestOCILayersNspawn runs both images in one nspawn pod: two overlays on
// the one base layer tree. A sandbox's added app, which is copied into the
// pod, gets the layers flattened, whiteouts honoured.
func TestOCILayersNspawn(t *testing.T) {
	t.Parallel()
	requireTool(t, "systemd-nspawn", "systemd-container")
	pair := ociLayersImages(t)
	e := newEnv(t)
	ids := make([]string, 2)
	for i, img := range []v1.Image{pair.a, pair.b} {
		ref := "oci:" + ociWriteLayout(t, img, "v1") + ":v1"
		ids[i] = strings.TrimSpace(e.mustRun("fetch", "--insecure-options=image", ref).Stdout)
	}
	r := e.mustRun("run", ids[0], "--name=a", ids[1], "--name=b")
	for _, want := range []string{ociLayersWantA, ociLayersWantB} {
		for _, line := range strings.Split(strings.TrimSpace(want), "\n") {
			if !strings.Contains(r.Stdout, line) {
				t.Fatalf("nspawn pod: want %q in\n%s", line, r)
			}
		}
	}
	uuid := appSandbox(t, e)
	logFile := filepath.Join(t.TempDir(), "a.log")
	e.mustRun("app", "add", uuid, ids[0], "--name=a", "--log="+logFile)
	e.mustRun("app", "start", uuid, "--app=a")
	for range 100 {
		if data, _ := os.ReadFile(logFile); strings.Contains(string(data), ociLayersWantA) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	data, _ := os.ReadFile(logFile)
	t.Fatalf("sandbox app: want %q in its log, have %q", ociLayersWantA, data)
}

// ociLayersMany is an image of n layers, each adding /many/N and deleting
// the file the layer below added (so only the top one's stays), on busybox.
func ociLayersMany(t testing.TB, n int) v1.Image {
	t.Helper()
	layers := []v1.Layer{ociDirLayer(t, busyboxRootfs(t))}
	for i := 1; i <= n; i++ {
		entries := []ociTarEntry{{name: "many/"}, {name: fmt.Sprintf("many/%d", i), body: fmt.Sprintf("%d\n", i)}}
		if i > 1 {
			entries = append(entries, ociTarEntry{name: fmt.Sprintf("many/.wh.%d", i-1)})
		}
		layers = append(layers, ociLayer(t, entries...))
	}
	return ociLayersImage(t, "ls /many", layers...)
}

// TestOCILayersManyLayers runs images of more layers than fit, by path,
// in an overlay's option string (a page): the lower directories are then
// named by descriptor, and the rootfs is still an overlay. Past what
// overlayfs stacks (500), the layers are flattened, with a warning.
func TestOCILayersManyLayers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		layers  int
		overlay bool
	}{{80, true}, {510, false}} {
		ref := "oci:" + ociWriteLayout(t, ociLayersMany(t, tc.layers), "v1") + ":v1"
		id := strings.TrimSpace(e.mustRun("fetch", "--insecure-options=image", ref).Stdout)
		r := e.mustRun("run", "--stage1-name=fly", id)
		if got, want := strings.TrimSpace(r.Stdout), fmt.Sprint(tc.layers); got != want {
			t.Fatalf("%d layers: /many holds %q, want only %q: %s", tc.layers, got, want, r)
		}
		if flattened := strings.Contains(r.Stderr, "flattening its layers"); flattened == tc.overlay {
			t.Fatalf("%d layers: flattened %v, want %v: %s", tc.layers, flattened, !tc.overlay, r)
		}
	}
}

// TestOCILayersUncompressedAndRepeated runs an image with an uncompressed
// layer (its digest is its diff ID: the blob and the tree each have a lock
// of their own) listed twice (as images repeat empty layers): the layer is
// stored and extracted once, and the fetch does not wait on itself.
func TestOCILayersUncompressedAndRepeated(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "srv/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.WriteHeader(&tar.Header{Name: "srv/plain", Typeflag: tar.TypeReg, Mode: 0o644, Size: 6})
	tw.Write([]byte("plain\n"))
	tw.Close()
	plain := static.NewLayer(buf.Bytes(), types.OCIUncompressedLayer)
	img := ociLayersImage(t, "cat /srv/plain", ociDirLayer(t, busyboxRootfs(t)), plain, plain)
	e := newEnv(t)
	ref := "oci:" + ociWriteLayout(t, img, "v1") + ":v1"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, e.args("fetch", "--insecure-options=image", ref)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if ctx.Err() != nil {
		t.Fatalf("fetching an image that lists a layer twice hung: %s", stderr.String())
	}
	if err != nil {
		t.Fatalf("fetch: %v: %s", err, stderr.String())
	}
	id := strings.TrimSpace(string(out))
	if r := e.mustRun("run", "--stage1-name=fly", id); !strings.Contains(r.Stdout, "plain\n") {
		t.Fatalf("run: %s", r)
	}
	if trees, blobs := ociLayersStored(t, e); len(trees) != 2 || len(blobs) != 2 {
		t.Fatalf("want 2 distinct layers stored once each, have trees %v and blobs %v", trees, blobs)
	}
}

// TestOCILayersSingleLayerWhiteout runs a one-layer image holding a
// whiteout (squashed images may): in its layer tree it is overlayfs's 0:0
// character device, which must not show in the app's rootfs, overlay or
// copy.
func TestOCILayersSingleLayerWhiteout(t *testing.T) {
	t.Parallel()
	l := ociLayer(t, append(ociDirEntries(t, busyboxRootfs(t)), ociTarEntry{name: ".wh.ghost"})...)
	img := ociLayersImage(t, "test -e /ghost && echo ghost-present || echo ghost-absent", l)
	e := newEnv(t)
	id := strings.TrimSpace(e.mustRun("fetch", "--insecure-options=image", "oci:"+ociWriteLayout(t, img, "v1")+":v1").Stdout)
	for _, flags := range [][]string{nil, {"--no-overlay"}} {
		r := e.mustRun(append(append([]string{"run", "--stage1-name=fly"}, flags...), id)...)
		if !strings.Contains(r.Stdout, "ghost-absent\n") {
			t.Fatalf("run %v: the whiteout shows in the rootfs: %s", flags, r)
		}
	}
}
