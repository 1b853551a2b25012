package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunFetchesAndVerifiesByName runs an image by name the way a user
// would after trusting its publisher: orbit discovers it, fetches it with
// its signature, verifies it and runs it, with no --insecure-options.
func TestRunFetchesAndVerifiesByName(t *testing.T) {
	t.Parallel()
	w := newFetchWorld(t)
	key := pgpKey(t, "Hello Publisher", time.Now().Add(-time.Hour), 0)
	m := imageManifest("example.com/hello", "/bin/sh", "-c", "echo verified-and-running")
	m["labels"] = append(m["labels"].([]map[string]string), map[string]string{"name": "version", "value": "1.0"})
	aci, err := os.ReadFile(writeACI(t, filepath.Join(t.TempDir(), "hello.aci"), busyboxRootfs(t), m))
	if err != nil {
		t.Fatal(err)
	}
	w.publish("example.com/hello", "1.0", aci, pgpSign(t, key, aci, time.Now()))

	// Not trusted yet: refused, and nothing runs.
	r := w.run("run", "--stage1-name=fly", "example.com/hello:1.0")
	if r.Code == 0 || strings.Contains(r.Stdout, "verified-and-running") {
		t.Fatalf("an untrusted image ran: %s", r)
	}
	w.trustKey("example.com/hello", pgpPublic(t, key))
	p := imagePath("example.com/hello", "1.0")
	before := w.srv.hitCount(p)
	r = w.mustRun("run", "--stage1-name=fly", "example.com/hello:1.0")
	if !strings.Contains(r.Stdout, "verified-and-running") {
		t.Fatalf("run by name: %s", r)
	}
	if got := w.srv.hitCount(p) - before; got != 1 {
		t.Fatalf("image downloaded %d times by the first run, want 1", got)
	}
	// --pull-policy: new uses the store; never never asks the server;
	// update asks but the unchanged image is not downloaded again.
	for _, policy := range []string{"new", "never", "update"} {
		r := w.mustRun("run", "--stage1-name=fly", "--pull-policy="+policy, "example.com/hello:1.0")
		if !strings.Contains(r.Stdout, "verified-and-running") {
			t.Fatalf("--pull-policy=%s: %s", policy, r)
		}
	}
	if got := w.srv.hitCount(p) - before; got != 1 {
		t.Fatalf("image downloaded %d times in all, want 1 (cache)", got)
	}
	if r := w.run("run", "--stage1-name=fly", "--pull-policy=never", "example.com/other:1.0"); r.Code == 0 || !strings.Contains(r.Stderr, "example.com/other") {
		t.Fatalf("--pull-policy=never with a missing image: %s", r)
	}
}
