package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Functional tests of fetching as rkt 1.30 fetched; helpers are in
// rkt_compat_test.go.

// An HTTP fetch cut short is resumed by the next fetch of the URL with a
// Range request for the rest (If-Range with the server's ETag), as rkt
// resumed its partial downloads, and gives the right image; the kept part
// is gone once the image is stored.
func TestRktFetchResumesCutDownload(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/resumed")
	body, err := os.ReadFile(aci)
	if err != nil {
		t.Fatal(err)
	}
	want := rktImageID(t, aci)
	n := len(body) / 2
	srv := rktNewCutServer(t, body, `"v1"`, n)
	if r := e.run("fetch", "--insecure-options=image", srv.url); r.Code == 0 {
		t.Fatalf("the cut fetch succeeded: %s", r)
	}
	if len(rktPartials(e)) == 0 {
		t.Errorf("nothing of the cut download was kept")
	}
	r := e.run("fetch", "--insecure-options=image", srv.url)
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != want {
		t.Fatalf("the resumed fetch: want %s: %s", want, r)
	}
	reqs := srv.requests()
	if len(reqs) != 2 || reqs[1] != fmt.Sprintf(`range=bytes=%d- if-range="v1"`, n) {
		t.Errorf("requests: want the second to ask for bytes=%d- if the image is still \"v1\": %q", n, reqs)
	}
	if p := rktPartials(e); len(p) != 0 {
		t.Errorf("kept download left after the image was stored: %v", p)
	}
}

// A kept part that is not part of the image now is discarded and the
// image downloaded whole: the server's validator changed (it answers the
// If-Range with the whole new image), the server gave no validator and
// the result is not a valid image, or it answers with another range than
// asked. image gc removes kept parts nobody uses.
func TestRktFetchDiscardsInvalidPartial(t *testing.T) {
	t.Parallel()
	oldACI := busyboxACI(t, "example.com/partial-old")
	newACI := busyboxACI(t, "example.com/partial-new", "/bin/true")
	oldBody, _ := os.ReadFile(oldACI)
	newBody, _ := os.ReadFile(newACI)
	want := rktImageID(t, newACI)
	n := min(len(oldBody), len(newBody)) / 2
	for _, tc := range []struct {
		name     string
		etag     string
		badRange bool
		requests int
	}{
		{"changed ETag", `"old"`, false, 2},
		{"no validator", "", false, 3},
		{"wrong Content-Range", `"old"`, true, 3},
	} {
		e := newEnv(t)
		srv := rktNewCutServer(t, oldBody, tc.etag, n)
		if r := e.run("fetch", "--insecure-options=image", srv.url); r.Code == 0 {
			t.Fatalf("%s: the cut fetch succeeded: %s", tc.name, r)
		}
		if tc.etag != "" && !tc.badRange {
			srv.set(newBody, `"new"`, false)
		} else {
			srv.set(newBody, tc.etag, tc.badRange)
		}
		r := e.run("fetch", "--insecure-options=image", srv.url)
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != want {
			t.Errorf("%s: want the new image %s: %s", tc.name, want, r)
		}
		reqs := srv.requests()
		if len(reqs) != tc.requests || !strings.HasPrefix(reqs[1], fmt.Sprintf("range=bytes=%d-", n)) || (len(reqs) > 2 && !strings.HasPrefix(reqs[2], "range= ")) {
			t.Errorf("%s: requests: want a range request, then (%d in all) the whole image: %q", tc.name, tc.requests, reqs)
		}
		if p := rktPartials(e); len(p) != 0 {
			t.Errorf("%s: kept download left: %v", tc.name, p)
		}
	}

	// image gc removes a kept part nobody has touched for a while; gc
	// one too old to be resumed.
	e := newEnv(t)
	srv := rktNewCutServer(t, oldBody, `"gc"`, n)
	age := func(d time.Duration) {
		parts := rktPartials(e)
		if len(parts) == 0 {
			t.Fatal("nothing of the cut download was kept")
		}
		old := time.Now().Add(-d)
		for _, p := range parts {
			os.Chtimes(filepath.Join(e.Dir, "cas", "partial", p), old, old)
		}
	}
	e.run("fetch", "--insecure-options=image", srv.url)
	age(time.Hour)
	if r := e.mustRun("gc"); strings.Contains(r.Stdout, "partial") || len(rktPartials(e)) == 0 {
		t.Errorf("gc removed a kept download young enough to resume: %s", r)
	}
	e.mustRun("image", "gc")
	if p := rktPartials(e); len(p) != 0 {
		t.Errorf("image gc left kept downloads: %v", p)
	}
	srv.set(oldBody, `"gc"`, false)
	srv.mu.Lock()
	srv.cuts = 1
	srv.mu.Unlock()
	e.run("fetch", "--insecure-options=image", srv.url)
	age(25 * time.Hour)
	if r := e.mustRun("gc"); !strings.Contains(r.Stdout, `removed leftover "partial/`) || len(rktPartials(e)) != 0 {
		t.Errorf("gc left a kept download too old to resume: %s %v", r, rktPartials(e))
	}
}
