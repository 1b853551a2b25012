package tests

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Functional tests of export, resumed downloads, the filling of a
// converted Docker image's volumes and --ipc=parent against a hostile app,
// image or server; helpers are prefixed hostileRkt.

// hostileRktServer serves whatever handle writes for the nth request (from
// 0) on 127.0.0.1, and counts the requests and the body bytes written.
type hostileRktServer struct {
	url      string
	requests atomic.Int64
	written  atomic.Int64
}

func hostileRktServe(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int, write func([]byte) error)) *hostileRktServer {
	s := &hostileRktServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(s.requests.Add(1) - 1)
		write := func(b []byte) error {
			m, err := w.Write(b)
			s.written.Add(int64(m))
			return err
		}
		handle(w, r, n, write)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL + "/image.aci"
	return s
}

// hostileRktEndless writes zeroes until the client goes away.
func hostileRktEndless(write func([]byte) error) {
	buf := make([]byte, 64<<10)
	for write(buf) == nil {
	}
}

// hostileRktRunFor runs an orbit command that must end within d.
func hostileRktRunFor(t *testing.T, e *env, d time.Duration, args ...string) result {
	t.Helper()
	cmd := e.command(args...)
	timer := time.AfterFunc(d, func() { cmd.Process.Kill() })
	defer timer.Stop()
	r := runCommand(t, cmd)
	if !timer.Stop() {
		t.Errorf("orbit %s did not end within %s", strings.Join(args, " "), d)
	}
	return r
}

// hostileRktPartialBytes is the size of an env's kept downloads together.
func hostileRktPartialBytes(e *env) int64 {
	var n int64
	for _, name := range rktPartials(e) {
		if fi, err := os.Lstat(filepath.Join(e.Dir, "cas", "partial", name)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// A server cannot make a fetch write more than about the image size limit:
// not with an endless body, a Content-Length above the limit, or, resuming a
// cut download, a 206 whose Content-Range announces a huge image, or less
// than it then sends. The kept part stays within the limit across fetches.
func TestHostileRktFetchBodyBoundedBySizeLimit(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	const cut = 600 << 10
	cutFirst := func(w http.ResponseWriter, write func([]byte) error) {
		w.Header().Set("ETag", `"e"`)
		w.Header().Set("Content-Length", strconv.Itoa(cut*3))
		w.WriteHeader(http.StatusOK)
		write(make([]byte, cut))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	for _, tc := range []struct {
		name   string
		handle func(w http.ResponseWriter, r *http.Request, n int, write func([]byte) error)
	}{
		{"endless body", func(w http.ResponseWriter, r *http.Request, n int, write func([]byte) error) {
			hostileRktEndless(write)
		}},
		{"Content-Length above the limit", func(w http.ResponseWriter, r *http.Request, n int, write func([]byte) error) {
			w.Header().Set("Content-Length", strconv.Itoa(1<<40))
			hostileRktEndless(write)
		}},
		{"206 announcing a huge image", func(w http.ResponseWriter, r *http.Request, n int, write func([]byte) error) {
			if r.Header.Get("Range") == "" {
				cutFirst(w, write)
			}
			w.Header().Set("ETag", `"e"`)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", cut, int64(1)<<40-1, int64(1)<<40))
			w.WriteHeader(http.StatusPartialContent)
			hostileRktEndless(write)
		}},
		{"206 sending more than its range", func(w http.ResponseWriter, r *http.Request, n int, write func([]byte) error) {
			if r.Header.Get("Range") == "" {
				cutFirst(w, write)
			}
			w.Header().Set("ETag", `"e"`)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/*", cut, cut+9))
			w.WriteHeader(http.StatusPartialContent)
			hostileRktEndless(write)
		}},
		{"206 of unknown size, cut again", func(w http.ResponseWriter, r *http.Request, n int, write func([]byte) error) {
			if r.Header.Get("Range") == "" {
				cutFirst(w, write)
			}
			first, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(r.Header.Get("Range"), "bytes="), "-"))
			w.Header().Set("ETag", `"e"`)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/*", first, first+cut-1))
			w.WriteHeader(http.StatusPartialContent)
			write(make([]byte, cut))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}},
	} {
		e := newEnv(t)
		e.ExtraEnv = append(e.ExtraEnv, "ORBIT_MAX_IMAGE_SIZE="+strconv.Itoa(limit))
		srv := hostileRktServe(t, tc.handle)
		bound := int64(limit + limit/64 + 1<<20)
		for i := range 5 {
			r := hostileRktRunFor(t, e, 20*time.Second, "fetch", "--insecure-options=image", srv.url)
			if r.Code == 0 {
				t.Errorf("%s: fetch %d succeeded: %s", tc.name, i, r)
			}
			if n := hostileRktPartialBytes(e); n > bound {
				t.Errorf("%s: fetch %d kept %d bytes, above the limit", tc.name, i, n)
				break
			}
			// What the server could write is bounded by the limit and
			// the sockets' buffers, for each try.
			if w := srv.written.Load(); w > int64(i+1)*(bound+16<<20) {
				t.Errorf("%s: the server wrote %d bytes into %d fetches", tc.name, w, i+1)
				break
			}
		}
	}
}

// A kept download whose name in cas/partial is a symbolic link or a hard
// link to a file elsewhere is not written through: the file stays as it
// was, the fetch gives the right image, and the directory is root's only.
func TestHostileRktFetchPartialLinkNotFollowed(t *testing.T) {
	t.Parallel()
	aci := busyboxACI(t, "example.com/partial-link")
	body, _ := os.ReadFile(aci)
	want := rktImageID(t, aci)
	for _, kind := range []string{"symlink", "hardlink"} {
		e := newEnv(t)
		srv := rktNewCutServer(t, body, `"v"`, 0)
		srv.cuts = 0
		e.mustRun("image", "list")
		dir := filepath.Join(e.Dir, "cas", "partial")
		if err := os.MkdirAll(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(dir, 0o777)
		sum := sha256.Sum256([]byte(srv.url))
		key := hex.EncodeToString(sum[:])
		victim := filepath.Join(e.Dir, "victim")
		writeFile(t, victim, "precious host file\n")
		var err error
		if kind == "symlink" {
			err = os.Symlink(victim, filepath.Join(dir, key+".aci"))
		} else {
			err = os.Link(victim, filepath.Join(dir, key+".aci"))
		}
		if err != nil {
			t.Fatal(err)
		}
		meta, _ := json.Marshal(map[string]any{"urlHash": key, "url": srv.url, "etag": `"v"`, "started": time.Now()})
		writeFile(t, filepath.Join(dir, key+".json"), string(meta))
		r := e.run("fetch", "--insecure-options=image", srv.url)
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != want {
			t.Errorf("%s: fetch: want %s: %s", kind, want, r)
		}
		if got, _ := os.ReadFile(victim); string(got) != "precious host file\n" {
			t.Errorf("%s: the file the kept download's name links to was written: %.80q", kind, got)
		}
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: cas/partial is not root's only: %v %v", kind, fi.Mode(), err)
		}
	}
}

// A server that switches the image behind the same ETag gets the kept
// part and the rest of the other image put together: that is not a valid
// image, so the image is downloaded whole once, and only once: a server
// that keeps sending something invalid is not asked again and again.
func TestHostileRktFetchSameETagSwitchedContent(t *testing.T) {
	t.Parallel()
	oldACI := busyboxACI(t, "example.com/switch-old")
	newACI := busyboxACI(t, "example.com/switch-new", "/bin/true")
	oldBody, _ := os.ReadFile(oldACI)
	newBody, _ := os.ReadFile(newACI)
	want := rktImageID(t, newACI)
	n := min(len(oldBody), len(newBody)) / 2

	e := newEnv(t)
	srv := rktNewCutServer(t, oldBody, `"same"`, n)
	if r := e.run("fetch", "--insecure-options=image", srv.url); r.Code == 0 {
		t.Fatalf("the cut fetch succeeded: %s", r)
	}
	srv.set(newBody, `"same"`, false)
	if r := e.run("fetch", "--insecure-options=image", srv.url); r.Code != 0 || strings.TrimSpace(r.Stdout) != want {
		t.Errorf("want the new image %s: %s", want, r)
	}
	if reqs := srv.requests(); len(reqs) != 3 || !strings.HasPrefix(reqs[1], fmt.Sprintf("range=bytes=%d-", n)) || !strings.HasPrefix(reqs[2], "range= ") {
		t.Errorf("requests: want the cut one, a range request, the whole image once: %q", reqs)
	}

	// Garbage behind the same ETag every time: one range request, one
	// whole download, then a one-line failure and nothing kept.
	e = newEnv(t)
	garbage := append([]byte(nil), oldBody...)
	srv = rktNewCutServer(t, oldBody, `"same"`, n)
	e.run("fetch", "--insecure-options=image", srv.url)
	for i := n; i < len(garbage); i++ {
		garbage[i] ^= 0xff
	}
	srv.set(garbage, `"same"`, false)
	r := hostileRktRunFor(t, e, 60*time.Second, "fetch", "--insecure-options=image", srv.url)
	if r.Code == 0 {
		t.Errorf("fetch of garbage: want a failure: %s", r)
	}
	if reqs := srv.requests(); len(reqs) != 3 {
		t.Errorf("requests: want the cut one, a range request, the whole image once: %q", reqs)
	}
	if p := rktPartials(e); len(p) != 0 {
		t.Errorf("kept download left: %v", p)
	}
}

// Two fetches of the same URL at once: one keeps the download, the other
// downloads into a file of its own; both give the image, and nothing is
// left in cas/partial.
func TestHostileRktFetchConcurrentSameURL(t *testing.T) {
	t.Parallel()
	aci := busyboxACI(t, "example.com/concurrent")
	body, _ := os.ReadFile(aci)
	want := rktImageID(t, aci)
	srv := hostileRktServe(t, func(w http.ResponseWriter, r *http.Request, n int, write func([]byte) error) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Header().Set("ETag", `"c"`)
		w.WriteHeader(http.StatusOK)
		step := len(body)/20 + 1
		for i := 0; i < len(body); i += step {
			write(body[i:min(i+step, len(body))])
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
		}
	})
	e := newEnv(t)
	e.mustRun("image", "list")
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.run("fetch", "--insecure-options=image", srv.url)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != want {
			t.Errorf("fetch %d: want %s: %s", i, want, r)
		}
	}
	if p := rktPartials(e); len(p) != 0 {
		t.Errorf("kept download left: %v", p)
	}
}
