package tests

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestStoreGCRacingRuns runs pods of both built-in flavours while `image gc
// --grace-period=0s` and `image rm` of the app image run in a loop beside
// them: a run holds what it resolved (the app image and its stage1 image)
// until its pod records the trees, so every run succeeds.
func TestStoreGCRacingRuns(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/racer", "/bin/sh", "-c", "echo ran-ok")

	stop := make(chan struct{})
	var loops sync.WaitGroup
	var gcFailures []string
	var mu sync.Mutex
	rounds, removals := 0, 0
	loops.Add(1)
	go func() {
		defer loops.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			// Either may find the image held or gone; neither may break a run.
			if r := e.run("image", "gc", "--grace-period=0s"); r.Code != 0 {
				mu.Lock()
				gcFailures = append(gcFailures, r.String())
				mu.Unlock()
			}
			r := e.run("image", "rm", "example.com/racer")
			mu.Lock()
			rounds++
			if r.Code == 0 {
				removals++
			}
			mu.Unlock()
		}
	}()

	const perFlavour = 10
	var runs sync.WaitGroup
	var failures []string
	for i := range 2 * perFlavour {
		flavour := "fly"
		if i%2 == 1 {
			flavour = "nspawn"
		}
		runs.Add(1)
		go func() {
			defer runs.Done()
			r := e.run("run", "--insecure-options=image", "--stage1-name="+flavour, aci)
			if r.Code != 0 || !strings.Contains(r.Stdout, "ran-ok") {
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%s run: %s", flavour, r))
				mu.Unlock()
			}
		}()
	}
	runs.Wait()
	close(stop)
	loops.Wait()
	for _, f := range failures {
		t.Error(f)
	}
	for _, f := range gcFailures {
		t.Errorf("image gc beside runs: %s", f)
	}
	t.Logf("%d rounds of image gc and rm beside the runs, %d removals", rounds, removals)
	if rounds < 2 {
		t.Errorf("only %d rounds of image gc and rm ran beside the runs", rounds)
	}

	// Afterwards gc works and the store is consistent: nothing but pods'
	// trees is left once the pods are gone.
	e.mustRun("gc", "--grace-period=0s")
	e.mustRun("image", "gc", "--grace-period=0s")
	storeAssertConsistent(t, e)
	if out := strings.TrimSpace(e.mustRun("image", "list", "--no-legend").Stdout); out != "" {
		t.Errorf("images left after the pods were collected: %q", out)
	}
	if trees, _ := filepath.Glob(filepath.Join(e.Dir, "cas/trees/*")); len(trees) != 0 {
		t.Errorf("trees left after the pods were collected: %v", trees)
	}
}

// TestStoreGCKeepsPodImages: `image gc` does not collect an image whose tree
// a pod records (the built-in stage1 image of a running pod among them);
// `image rm`, asked by name, removes it and leaves the pod its tree.
func TestStoreGCKeepsPodImages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/held", "/bin/sh", "-c", "echo prepared-ok")
	uuid := strings.TrimSpace(e.mustRun("prepare", "--insecure-options=image", "--stage1-name=fly", aci).Stdout)
	e.mustRun("image", "gc", "--grace-period=0s")
	out := e.mustRun("image", "list", "--no-legend").Stdout
	for _, name := range []string{"example.com/held", "orbit.dev/stage1-fly"} {
		if !strings.Contains(out, name) {
			t.Errorf("image gc removed %s, which a prepared pod uses: %q", name, out)
		}
	}
	e.mustRun("image", "rm", "example.com/held")
	if r := e.run("run-prepared", uuid); r.Code != 0 || !strings.Contains(r.Stdout, "prepared-ok") {
		t.Errorf("the prepared pod broke when its image was removed: %s", r)
	}
	e.mustRun("gc", "--grace-period=0s")
	e.mustRun("image", "gc", "--grace-period=0s")
	storeAssertConsistent(t, e)
}

// TestStoreDecompressionBomb: an image whose uncompressed size passes the
// configured limit is refused with one line and leaves nothing in the
// store.
func TestStoreDecompressionBomb(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bomb := storeBomb(t, 200<<20)
	if fi, err := os.Stat(bomb); err != nil || fi.Size() > 2<<20 {
		t.Fatalf("bomb: %v %v", fi, err)
	}
	storeJSON := filepath.Join(e.LocalCfg, "store.json")
	// In this order: the last one leaves no store.json behind for the
	// default-limit fetch below (a map's order would be random).
	for _, c := range []struct {
		name  string
		setup func()
	}{
		{"config file", func() { writeFile(t, storeJSON, `{"maxImageSize": "64MiB"}`) }},
		{"environment", func() {
			os.Remove(storeJSON)
			e.ExtraEnv = []string{"ORBIT_MAX_IMAGE_SIZE=64MiB"}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.setup()
			r := e.run("fetch", "--insecure-options=image", bomb)
			if r.Code != 254 || !strings.Contains(r.Stderr, "limit") || len(storeErrorLines(r.Stderr)) != 1 {
				t.Errorf("fetch of a bomb: %s", r)
			}
			storeAssertEmpty(t, e)
		})
	}
	// A limit that is not a size is refused before anything is read.
	e.ExtraEnv = []string{"ORBIT_MAX_IMAGE_SIZE=lots"}
	if r := e.run("fetch", "--insecure-options=image", bomb); r.Code != 254 || !strings.Contains(r.Stderr, "ORBIT_MAX_IMAGE_SIZE") {
		t.Errorf("a bad limit: %s", r)
	}
	// Under the default limit the same image is fine.
	e.ExtraEnv = nil
	if _, err := os.Stat(storeJSON); err == nil {
		t.Fatal("store.json is still there: the default limit is not what is tested")
	}
	e.mustRun("fetch", "--insecure-options=image", bomb)
}

// TestStoreControlCharacters: labels and annotations with control
// characters are refused at fetch; ones already stored are escaped by
// `image list` and `list`.
func TestStoreControlCharacters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	root := busyboxRootfs(t)
	for what, edit := range map[string]func(m map[string]any){
		"label": func(m map[string]any) {
			m["labels"] = append(m["labels"].([]map[string]string), map[string]string{"name": "version", "value": "1\nsha512-forged\texample.com/forged"})
		},
		"annotation": func(m map[string]any) {
			m["annotations"] = []map[string]string{{"name": "example.com/note", "value": "\x1b[2Jcleared"}}
		},
	} {
		m := imageManifest("example.com/hostile")
		edit(m)
		path := writeACI(t, filepath.Join(t.TempDir(), "hostile.aci"), root, m)
		r := e.run("fetch", "--insecure-options=image", path)
		if r.Code != 254 || !strings.Contains(r.Stderr, "control character") || len(storeErrorLines(r.Stderr)) != 1 {
			t.Errorf("fetch of an image with a hostile %s: %s", what, r)
		}
		storeAssertEmpty(t, e)
	}

	// An image stored before the check: forge its index entry.
	id := imageFetch(e, busyboxACI(t, "example.com/old", "/bin/sh", "-c", "echo old"))
	hostile := "1\n\x1b[2Jsha512-forged\texample.com/forged"
	storeForgeVersion(t, e, id, hostile)
	out := e.mustRun("image", "list", "--no-legend").Stdout
	if strings.Contains(out, "\x1b") || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, `\x1b`) || !strings.Contains(out, `\t`) {
		t.Errorf("image list printed a hostile label raw: %q", out)
	}
	// A pod made from it shows the same version through `list`.
	e.mustRun("prepare", "--insecure-options=image", "--stage1-name=fly", id)
	out = e.mustRun("list", "--no-legend").Stdout
	if strings.ContainsAny(out, "\x1b") || strings.Count(strings.TrimSpace(out), "\n") != 0 || !strings.Contains(out, `\x1b`) {
		t.Errorf("list printed a hostile label raw: %q", out)
	}
}

// storeErrorLines are the lines of stderr that are not warnings.
func storeErrorLines(stderr string) []string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if !strings.HasPrefix(l, "orbit: warning:") {
			lines = append(lines, l)
		}
	}
	return lines
}

// storeBomb writes a gzip ACI holding one file of size zeroes.
func storeBomb(t *testing.T, size int64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bomb.aci")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	tw := tar.NewWriter(gz)
	m, _ := json.Marshal(imageManifest("example.com/bomb"))
	now := time.Now()
	tw.WriteHeader(&tar.Header{Name: "manifest", Mode: 0o644, Size: int64(len(m)), ModTime: now, Typeflag: tar.TypeReg})
	tw.Write(m)
	tw.WriteHeader(&tar.Header{Name: "rootfs", Mode: 0o755, ModTime: now, Typeflag: tar.TypeDir})
	tw.WriteHeader(&tar.Header{Name: "rootfs/zeroes", Mode: 0o644, Size: size, ModTime: now, Typeflag: tar.TypeReg})
	zero := make([]byte, 1<<20)
	for left := size; left > 0; left -= int64(len(zero)) {
		if _, err := tw.Write(zero[:min(left, int64(len(zero)))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// storeAssertEmpty checks that the store holds no image, blob, temp file or
// tree.
func storeAssertEmpty(t *testing.T, e *env) {
	t.Helper()
	if out := strings.TrimSpace(e.mustRun("image", "list", "--no-legend").Stdout); out != "" {
		t.Errorf("images stored: %q", out)
	}
	for _, pattern := range []string{"cas/blobs/sha512/*/*", "cas/tmp/*", "cas/trees/*"} {
		if left, _ := filepath.Glob(filepath.Join(e.Dir, pattern)); len(left) != 0 {
			t.Errorf("left in the store: %v", left)
		}
	}
}

// storeAssertConsistent checks that blobs and index entries match one to
// one and no temp file is left.
func storeAssertConsistent(t *testing.T, e *env) {
	t.Helper()
	var js []map[string]any
	if err := json.Unmarshal([]byte(e.mustRun("image", "list", "--format=json").Stdout), &js); err != nil {
		t.Fatal(err)
	}
	blobs, _ := filepath.Glob(filepath.Join(e.Dir, "cas/blobs/sha512/*/*"))
	if len(blobs) != len(js) {
		t.Errorf("%d blobs for %d images", len(blobs), len(js))
	}
	for _, img := range js {
		hexID := strings.TrimPrefix(img["id"].(string), "sha512-")
		if _, err := os.Stat(filepath.Join(e.Dir, "cas/blobs/sha512", hexID[:2], hexID)); err != nil {
			t.Errorf("image %s: %v", img["id"], err)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(e.Dir, "cas/tmp/*")); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

// storeForgeVersion rewrites a stored image's version label in the index,
// as an image stored before labels were checked would have it.
func storeForgeVersion(t *testing.T, e *env, id, version string) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(e.Dir, "cas/index.db"), 0o644, &bolt.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("images"))
		var rec map[string]any
		if err := json.Unmarshal(b.Get([]byte(id)), &rec); err != nil {
			return err
		}
		labels := []map[string]string{{"name": "os", "value": "linux"}, {"name": "version", "value": version}}
		rec["labels"] = labels
		var m map[string]any
		raw, _ := json.Marshal(rec["manifest"])
		if err := json.Unmarshal(raw, &m); err != nil {
			return err
		}
		m["labels"] = labels
		rec["manifest"] = m
		data, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		return b.Put([]byte(id), data)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStoreIsolatorWithoutValue: an image whose isolator has no value made
// appc's decoder dereference a nil pointer, and orbit crashed at fetch.
// It is refused in one line and nothing is stored.
func TestStoreIsolatorWithoutValue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := imageManifest("example.com/nilisolator")
	m["app"].(map[string]any)["isolators"] = []map[string]any{{"name": "resource/memory"}}
	path := writeACI(t, filepath.Join(t.TempDir(), "nil.aci"), busyboxRootfs(t), m)
	r := e.run("fetch", "--insecure-options=image", path)
	if r.Code != 254 || !strings.Contains(r.Stderr, `isolator "resource/memory" has no value`) || len(storeErrorLines(r.Stderr)) != 1 {
		t.Errorf("fetch of an image with a valueless isolator: %s", r)
	}
	storeAssertEmpty(t, e)
}
