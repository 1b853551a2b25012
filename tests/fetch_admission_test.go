package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFetchRefusesWrongLabels: a correctly signed image of another version
// served where discovery points for the version asked for is refused and
// not stored.
func TestFetchRefusesWrongLabels(t *testing.T) {
	t.Parallel()
	w := newFetchWorld(t)
	key := pgpKey(t, "Publisher", time.Now().Add(-time.Hour), 0)
	w.trustKey("example.com", pgpPublic(t, key))
	old := fetchACI(t, "example.com/app", "1.1")
	w.publish("example.com/app", "1.2", old, pgpSign(t, key, old, time.Now()))

	oneErrorLine(t, w.run("fetch", "--full", "example.com/app:1.2"), "example.com/app", "version=1.1", "version=1.2")
	oneErrorLine(t, w.run("run", "--stage1-name=fly", "example.com/app:1.2"), "version=1.1", "version=1.2")
	for _, ref := range []string{"example.com/app:1.2", "example.com/app:1.1", "example.com/app"} {
		oneErrorLine(t, w.run("fetch", "--full", "--pull-policy=never", ref), "not in the store")
	}
	// The same image asked for by its own version is fine.
	w.publish("example.com/app", "1.1", old, pgpSign(t, key, old, time.Now()))
	w.mustRun("fetch", "--full", "example.com/app:1.1")
}

// TestFetchUnverifiedNotReused: an image fetched with
// --insecure-options=image is not used by later commands that verify,
// until it is fetched again with its signature.
func TestFetchUnverifiedNotReused(t *testing.T) {
	t.Parallel()
	w := newFetchWorld(t)
	key := pgpKey(t, "Publisher", time.Now().Add(-time.Hour), 0)
	w.trustKey("example.com", pgpPublic(t, key))
	m := imageManifest("example.com/hello", "/bin/sh", "-c", "echo reused-image-ran")
	m["labels"] = append(m["labels"].([]map[string]string), map[string]string{"name": "version", "value": "1.0"})
	aci, err := os.ReadFile(writeACI(t, filepath.Join(t.TempDir(), "hello.aci"), busyboxRootfs(t), m))
	if err != nil {
		t.Fatal(err)
	}
	w.srv.put("/dl/hello.aci", aci)
	url := "https://example.com/dl/hello.aci"
	id := w.mustRun("fetch", "--full", "--insecure-options=image", url).Stdout

	for _, args := range [][]string{
		{"fetch", "--full", "--pull-policy=new", url},
		{"fetch", "--full", "--pull-policy=never", url},
		{"run", "--stage1-name=fly", url},
		{"run", "--stage1-name=fly", "--pull-policy=never", url},
	} {
		r := w.run(args...)
		oneErrorLine(t, r, "without signature verification", "--insecure-options=image")
		if strings.Contains(r.Stdout, "reused-image-ran") {
			t.Fatalf("%v ran the unverified image", args)
		}
	}
	if r := w.mustRun("run", "--stage1-name=fly", "--insecure-options=image", url); !strings.Contains(r.Stdout, "reused-image-ran") {
		t.Fatalf("run with --insecure-options=image: %s", r)
	}
	// By image ID the content is pinned: used as it is.
	if r := w.mustRun("fetch", "--full", strings.TrimSpace(id)); r.Stdout != id {
		t.Fatalf("fetch by ID gave %q, want %q", r.Stdout, id)
	}
	// Still no signature: updating does not help.
	oneErrorLine(t, w.run("fetch", "--full", "--pull-policy=update", url), "no signature")

	// Fetched again with a valid signature, it is used without the flag.
	w.srv.put("/dl/hello.aci.asc", pgpSign(t, key, aci, time.Now()))
	if r := w.mustRun("fetch", "--full", "--pull-policy=update", url); r.Stdout != id {
		t.Fatalf("verified fetch gave %q, want %q", r.Stdout, id)
	}
	if r := w.mustRun("run", "--stage1-name=fly", url); !strings.Contains(r.Stdout, "reused-image-ran") {
		t.Fatalf("run after verification: %s", r)
	}
}

// TestFetchUnverifiedByNameNotReused: the same for an image found in the
// store by name.
func TestFetchUnverifiedByNameNotReused(t *testing.T) {
	t.Parallel()
	w := newFetchWorld(t)
	key := pgpKey(t, "Publisher", time.Now().Add(-time.Hour), 0)
	w.trustKey("example.com", pgpPublic(t, key))
	aci := fetchACI(t, "example.com/named", "2.0")
	w.publish("example.com/named", "2.0", aci, nil)
	w.mustRun("fetch", "--full", "--insecure-options=image", "example.com/named:2.0")
	oneErrorLine(t, w.run("fetch", "--full", "--pull-policy=new", "example.com/named:2.0"), "example.com/named:2.0", "without signature verification")
	w.mustRun("fetch", "--full", "--insecure-options=image", "--pull-policy=never", "example.com/named:2.0")

	w.publish("example.com/named", "2.0", aci, pgpSign(t, key, aci, time.Now()))
	w.mustRun("fetch", "--full", "--pull-policy=update", "example.com/named:2.0")
	w.mustRun("fetch", "--full", "--pull-policy=never", "example.com/named:2.0")
}

// TestFetchDiscoveredSignatureMustBeURL: a discovery page cannot make orbit
// read a file on this machine as an image or signature.
func TestFetchDiscoveredSignatureMustBeURL(t *testing.T) {
	t.Parallel()
	w := newFetchWorld(t)
	key := pgpKey(t, "Publisher", time.Now().Add(-time.Hour), 0)
	w.trustKey("example.com", pgpPublic(t, key))
	for _, template := range []string{"file:///etc/passwd", "/etc/passwd", "/etc/{name}.{ext}"} {
		w.srv.publishDiscovery("example.com/evil", "example.com/evil", template, "")
		oneErrorLine(t, w.run("fetch", "--full", "example.com/evil:1.0"), "example.com/evil", "not an http(s) URL")
	}
}
