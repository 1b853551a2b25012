package tests

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Functional tests of behaviours orbit shares with rkt 1.30, each named
// after the behaviour; helpers are prefixed rkt.
// rktImage writes a busybox ACI whose manifest edit changes first.
func rktImage(t *testing.T, name string, edit func(m map[string]any), exec ...string) string {
	t.Helper()
	m := imageManifest(name, exec...)
	if edit != nil {
		edit(m)
	}
	return writeACI(t, filepath.Join(t.TempDir(), "image.aci"), busyboxRootfs(t), m)
}

// rktApp returns the app section of an image manifest.
func rktApp(m map[string]any) map[string]any { return m["app"].(map[string]any) }

// rktFlavours are the stage1 flavours a behaviour is checked in.
func rktFlavours(t *testing.T) []string {
	requireNspawn(t)
	return []string{rktFly, rktNspawn}
}

const (
	rktFly    = "--stage1-name=coreos.com/rkt/stage1-fly:1.30.0"
	rktNspawn = "--stage1-name=coreos.com/rkt/stage1-coreos:1.30.0"
)

// rktStatusField returns the value of a field of /proc/self/status output.
func rktStatusField(out, name string) string {
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// rktCapBit reports whether a hexadecimal capability set holds capability n.
func rktCapBit(hex string, n uint) bool {
	var v uint64
	for _, c := range hex {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= uint64(c - '0')
		case c >= 'a' && c <= 'f':
			v |= uint64(c-'a') + 10
		}
	}
	return v&(1<<n) != 0
}

// rktImageFromRootfs writes an ACI of a busybox rootfs that edit may change.
func rktImageFromRootfs(t *testing.T, name string, rootfs func(dir string), manifest func(m map[string]any), exec ...string) string {
	t.Helper()
	dir := busyboxRootfs(t)
	if rootfs != nil {
		rootfs(dir)
	}
	m := imageManifest(name, exec...)
	if manifest != nil {
		manifest(m)
	}
	return writeACI(t, filepath.Join(t.TempDir(), "image.aci"), dir, m)
}

// rktHoldsCap reports whether the test process holds capability n.
func rktHoldsCap(n uint) bool {
	data, err := os.ReadFile("/proc/self/status")
	return err == nil && rktCapBit(rktStatusField(string(data), "CapEff"), n)
}

// rktExportImage is an image whose app changes its root filesystem: it
// rewrites one file, removes another and makes a directory, and writes to
// a volume, which is not part of an export.
func rktExportImage(t *testing.T, name string) string {
	t.Helper()
	return rktImageFromRootfs(t, name, func(dir string) {
		writeFile(t, filepath.Join(dir, "etc/keep"), "as built\n")
		writeFile(t, filepath.Join(dir, "etc/gone"), "to be removed\n")
		os.MkdirAll(filepath.Join(dir, "data"), 0o755)
	}, func(m map[string]any) {
		rktApp(m)["mountPoints"] = []map[string]any{{"name": "data", "path": "/data"}}
	}, "/bin/sh", "-c", "echo changed > /etc/keep; rm /etc/gone; mkdir /made; echo new > /made/file; echo vol > /data/x")
}

// rktCutServer serves one image over HTTP on 127.0.0.1, cutting the
// connection after cutAfter bytes the first cuts times it is asked for
// the whole image, and logging each request's Range and If-Range.
type rktCutServer struct {
	mu       sync.Mutex
	body     []byte
	etag     string
	cutAfter int
	cuts     int
	// badRange answers a range request with a Content-Range that starts
	// at 0, whatever was asked.
	badRange bool
	log      []string
	url      string
}

func rktNewCutServer(t *testing.T, body []byte, etag string, cutAfter int) *rktCutServer {
	s := &rktCutServer{body: body, etag: etag, cutAfter: cutAfter, cuts: 1}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.url = srv.URL + "/image.aci"
	return s
}

func (s *rktCutServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.log = append(s.log, "range="+r.Header.Get("Range")+" if-range="+r.Header.Get("If-Range"))
	body, etag, cut, bad := s.body, s.etag, s.cuts > 0 && r.Header.Get("Range") == "", s.badRange
	if cut {
		s.cuts--
	}
	s.mu.Unlock()
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	switch {
	case cut:
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		w.Write(body[:s.cutAfter])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	case bad && r.Header.Get("Range") != "":
		w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(body)-1, len(body)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(body)
	default:
		http.ServeContent(w, r, "image.aci", time.Time{}, bytes.NewReader(body))
	}
}

func (s *rktCutServer) set(body []byte, etag string, badRange bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.etag, s.badRange = body, etag, badRange
}

func (s *rktCutServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

// rktImageID is the ID orbit gives an ACI file, fetched into an env of
// its own.
func rktImageID(t *testing.T, path string) string {
	t.Helper()
	return strings.TrimSpace(newEnv(t).mustRun("fetch", "--insecure-options=image", path).Stdout)
}

// rktPartials lists the kept downloads of an env's store.
func rktPartials(e *env) []string {
	ents, _ := os.ReadDir(filepath.Join(e.Dir, "cas", "partial"))
	var names []string
	for _, d := range ents {
		names = append(names, d.Name())
	}
	return names
}
