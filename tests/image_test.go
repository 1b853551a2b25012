package tests

import (
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// imageFetch imports an ACI file and returns its image ID.
func imageFetch(e *env, path string) string {
	e.t.Helper()
	r := e.mustRun("fetch", "--full", "--insecure-options=image", path)
	id := strings.TrimSpace(r.Stdout)
	if !strings.HasPrefix(id, "sha512-") || len(id) != len("sha512-")+128 {
		e.t.Fatalf("fetch printed %q, want an image ID", r.Stdout)
	}
	return id
}

// imageSmallACI makes a small ACI without busybox: a name, a version and a
// few files, optionally depending on other images by name.
func imageSmallACI(t *testing.T, name, version string, files map[string]string, deps ...string) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for p, c := range files {
		writeFile(t, filepath.Join(root, p), c)
	}
	m := imageManifest(name)
	m["labels"] = append(m["labels"].([]map[string]string), map[string]string{"name": "version", "value": version})
	if len(deps) > 0 {
		var ds []map[string]any
		for _, d := range deps {
			ds = append(ds, map[string]any{"imageName": d})
		}
		m["dependencies"] = ds
	}
	path := filepath.Join(t.TempDir(), strings.ReplaceAll(name, "/", "_")+"-"+version+".aci")
	return writeACI(t, path, root, m)
}

func TestImageListCatManifestExport(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := imageFetch(e, imageSmallACI(t, "example.com/hello", "1.0", map[string]string{"hello": "hi"}))

	out := e.mustRun("image", "list").Stdout
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("image list:\n%s", out)
	}
	for _, h := range []string{"ID", "NAME", "SIZE", "IMPORT TIME", "LAST USED"} {
		if !strings.Contains(lines[0], h) {
			t.Errorf("header %q lacks %s", lines[0], h)
		}
	}
	fields := strings.Fields(lines[1]) // aligned with spaces
	if fields[0] != id[:len("sha512-")+12] || !strings.Contains(lines[1], "example.com/hello:1.0") {
		t.Errorf("row %q", lines[1])
	}
	out = e.mustRun("image", "list", "--no-legend", "--full", "--fields=id,name").Stdout
	if got := strings.Fields(out); len(got) != 2 || got[0] != id || got[1] != "example.com/hello:1.0" {
		t.Errorf("--no-legend --full --fields=id,name: %q", out)
	}
	var js []map[string]any
	if err := json.Unmarshal([]byte(e.mustRun("image", "list", "--format=json").Stdout), &js); err != nil {
		t.Fatal(err)
	}
	if len(js) != 1 || js[0]["id"] != id || js[0]["name"] != "example.com/hello:1.0" || js[0]["size"].(float64) <= 0 || js[0]["import_time"].(float64) <= 0 {
		t.Errorf("json: %v", js)
	}
	if r := e.run("image", "list", "--fields=bogus"); r.Code == 0 {
		t.Errorf("unknown field accepted: %s", r)
	}

	for _, ref := range []string{"example.com/hello", "example.com/hello:1.0", id[:20], id} {
		var m map[string]any
		if err := json.Unmarshal([]byte(e.mustRun("image", "cat-manifest", ref).Stdout), &m); err != nil || m["name"] != "example.com/hello" {
			t.Errorf("cat-manifest %s: %v %v", ref, m, err)
		}
	}
	if out := e.mustRun("image", "cat-manifest", "--pretty-print=false", id).Stdout; strings.Count(out, "\n") != 1 {
		t.Errorf("--pretty-print=false: %q", out)
	}
	r := e.run("image", "cat-manifest", "example.com/nope")
	if r.Code != 254 || !strings.Contains(r.Stderr, "example.com/nope") || !strings.Contains(r.Stderr, "not found") {
		t.Errorf("missing image: %s", r)
	}

	file := filepath.Join(t.TempDir(), "out.aci")
	e.mustRun("image", "export", "example.com/hello:1.0", file)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha512.Sum512(data)
	if got := "sha512-" + hex.EncodeToString(sum[:]); got != id {
		t.Fatalf("exported file hashes to %s, want the image ID %s", got, id)
	}
	if r := e.run("image", "export", id, file); r.Code != 254 || !strings.Contains(r.Stderr, "--overwrite") {
		t.Errorf("export over an existing file: %s", r)
	}
	e.mustRun("image", "export", "--overwrite", id, file)
	// The exported ACI imports as the same image.
	if again := imageFetch(e, file); again != id {
		t.Errorf("re-importing the export gave %s", again)
	}
}

func TestImageExtractAndRender(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	imageFetch(e, imageSmallACI(t, "example.com/base", "1.0", map[string]string{"etc/base": "base", "etc/shared": "base"}))
	app := imageFetch(e, imageSmallACI(t, "example.com/app", "1.0", map[string]string{"bin/app": "app", "etc/shared": "app"}, "example.com/base"))
	dir := t.TempDir()

	extracted := filepath.Join(dir, "extracted")
	e.mustRun("image", "extract", "example.com/app:1.0", extracted)
	assertFile(t, filepath.Join(extracted, "rootfs/bin/app"), "app")
	assertNoFile(t, filepath.Join(extracted, "rootfs/etc/base"))
	if _, err := os.Stat(filepath.Join(extracted, "manifest")); err != nil {
		t.Error(err)
	}
	if r := e.run("image", "extract", app, extracted); r.Code != 254 {
		t.Errorf("extract over an existing dir: %s", r)
	}
	e.mustRun("image", "extract", "--overwrite", "--rootfs-only", app, extracted)
	assertFile(t, filepath.Join(extracted, "bin/app"), "app")
	assertNoFile(t, filepath.Join(extracted, "manifest"))

	rendered := filepath.Join(dir, "rendered")
	e.mustRun("image", "render", app, rendered)
	assertFile(t, filepath.Join(rendered, "rootfs/bin/app"), "app")
	assertFile(t, filepath.Join(rendered, "rootfs/etc/base"), "base")
	assertFile(t, filepath.Join(rendered, "rootfs/etc/shared"), "app")
	var m map[string]any
	data, _ := os.ReadFile(filepath.Join(rendered, "manifest"))
	if json.Unmarshal(data, &m) != nil || m["name"] != "example.com/app" {
		t.Errorf("rendered manifest: %s", data)
	}
	e.mustRun("image", "render", "--rootfs-only", "--overwrite", app, rendered)
	assertFile(t, filepath.Join(rendered, "etc/base"), "base")

	// Without its dependency the app cannot be rendered, and the error
	// names what is missing.
	e.mustRun("image", "rm", "example.com/base")
	r := e.run("image", "render", app, filepath.Join(dir, "broken"))
	if r.Code != 254 || !strings.Contains(r.Stderr, "example.com/base") {
		t.Errorf("render without the dependency: %s", r)
	}
	assertNoFile(t, filepath.Join(dir, "broken"))
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*")); len(leftovers) != 0 {
		t.Errorf("temp dirs left: %v", leftovers)
	}
}

func TestImageRm(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := imageFetch(e, imageSmallACI(t, "example.com/a", "1.0", nil))
	b := imageFetch(e, imageSmallACI(t, "example.com/b", "1.0", nil))
	r := e.run("image", "rm", a[:16], "example.com/nope", "example.com/b:1.0")
	if r.Code != 254 {
		t.Fatalf("rm with a missing image should fail: %s", r)
	}
	for _, id := range []string{a, b} {
		if !strings.Contains(r.Stdout, fmt.Sprintf("successfully removed aci for image: %q", id)) {
			t.Errorf("no success line for %s: %s", id, r)
		}
	}
	if !strings.Contains(r.Stdout, "2 image(s) successfully removed") || !strings.Contains(r.Stderr, "example.com/nope") {
		t.Errorf("rm output: %s", r)
	}
	if out := e.mustRun("image", "list", "--no-legend").Stdout; strings.TrimSpace(out) != "" {
		t.Errorf("images left: %q", out)
	}
	blobs, _ := filepath.Glob(filepath.Join(e.Dir, "cas/blobs/sha512/*/*"))
	if len(blobs) != 0 {
		t.Errorf("blobs left: %v", blobs)
	}
}

func TestImageGC(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := imageFetch(e, imageSmallACI(t, "example.com/a", "1.0", nil))
	// What an interrupted import and an interrupted render leave.
	cas := filepath.Join(e.Dir, "cas")
	tmpFile := filepath.Join(cas, "tmp", "import-42.aci")
	writeFile(t, tmpFile, "partial")
	old := time.Now().Add(-time.Hour)
	os.Chtimes(tmpFile, old, old)
	incomplete := filepath.Join(cas, "trees", "deps-sha512-"+strings.Repeat("ab", 64))
	if err := os.MkdirAll(filepath.Join(incomplete, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}

	out := e.mustRun("image", "gc").Stdout
	if !strings.Contains(out, "tmp/import-42.aci") || !strings.Contains(out, filepath.Base(incomplete)) {
		t.Errorf("gc output: %q", out)
	}
	assertNoFile(t, tmpFile)
	assertNoFile(t, incomplete)
	// The image was used just now: the default grace period keeps it.
	e.mustRun("image", "cat-manifest", id)

	out = e.mustRun("image", "gc", "--grace-period=0s").Stdout
	if !strings.Contains(out, fmt.Sprintf("successfully removed aci for image: %q", id)) {
		t.Errorf("gc --grace-period=0s: %q", out)
	}
	if r := e.run("image", "cat-manifest", id); r.Code == 0 {
		t.Error("the image survived gc --grace-period=0s")
	}
}

// TestImageConcurrentCommands runs fetches, removals, renders and gcs of the
// same and of different images at once, as separate orbit processes.
func TestImageConcurrentCommands(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var acis []string
	for i := range 3 {
		acis = append(acis, imageSmallACI(t, fmt.Sprintf("example.com/c%d", i), "1.0", map[string]string{"f": strings.Repeat("x", 1000*i)}))
	}
	dir := t.TempDir()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	run := func(okCodes []int, args ...string) {
		defer wg.Done()
		r := e.run(args...)
		for _, c := range okCodes {
			if r.Code == c {
				return
			}
		}
		mu.Lock()
		failures = append(failures, fmt.Sprintf("orbit %s: %s", strings.Join(args, " "), r))
		mu.Unlock()
	}
	for round := range 4 {
		for i, aci := range acis {
			wg.Add(4)
			go run([]int{0}, "fetch", "--full", "--insecure-options=image", aci)
			go run([]int{0}, "fetch", "--full", "--insecure-options=image", acis[0])
			// These may find the image gone or not there yet.
			go run([]int{0, 254}, "image", "render", fmt.Sprintf("example.com/c%d", i), filepath.Join(dir, fmt.Sprintf("r%d-%d", round, i)))
			go run([]int{0, 254}, "image", "rm", fmt.Sprintf("example.com/c%d", (i+1)%len(acis)))
		}
		wg.Add(2)
		go run([]int{0}, "image", "list")
		go run([]int{0}, "image", "gc", "--grace-period=1h")
		wg.Wait()
	}
	for _, f := range failures {
		// A render or rm that lost the race says so; anything else is a bug.
		if !strings.Contains(f, "not found") {
			t.Error(f)
		}
	}
	// Index and blobs agree.
	var js []map[string]any
	if err := json.Unmarshal([]byte(e.mustRun("image", "list", "--format=json").Stdout), &js); err != nil {
		t.Fatal(err)
	}
	blobs, _ := filepath.Glob(filepath.Join(e.Dir, "cas/blobs/sha512/*/*"))
	if len(blobs) != len(js) {
		t.Errorf("%d blobs for %d images", len(blobs), len(js))
	}
	for _, img := range js {
		id := img["id"].(string)
		hexID := strings.TrimPrefix(id, "sha512-")
		data, err := os.ReadFile(filepath.Join(e.Dir, "cas/blobs/sha512", hexID[:2], hexID))
		if err != nil {
			t.Errorf("image %s: %v", id, err)
			continue
		}
		sum := sha512.Sum512(data)
		if hex.EncodeToString(sum[:]) != hexID {
			t.Errorf("image %s: blob is corrupt", id)
		}
	}
}

func assertFile(t *testing.T, path, want string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Error(err)
		return
	}
	if string(got) != want {
		t.Errorf("%s = %q, want %q", path, got, want)
	}
}

func assertNoFile(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("%s exists", path)
	}
}
