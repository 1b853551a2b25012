package tests

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// ociTokenRegistry is a registry on loopback that wants a bearer token
// from its own token server (the Docker token protocol: a 401 with a
// Bearer challenge, a token for basic credentials), sends blob requests
// to a blob store with a 307, and whose blob store drops the connection
// once in the middle of the layer named drop.
type ociTokenRegistry struct {
	host string
	mu   sync.Mutex
	hits map[string]int // requests per path, blob store included
}

func ociStartTokenRegistry(t *testing.T, manifest []byte, blobs map[string][]byte, drop string) *ociTokenRegistry {
	t.Helper()
	r := &ociTokenRegistry{hits: map[string]int{}}
	const token = "orbit-test-token"
	dropped := false
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		p := req.URL.Path
		r.mu.Lock()
		r.hits[p]++
		r.mu.Unlock()
		switch {
		case p == "/token":
			user, pass, ok := req.BasicAuth()
			if !ok || user != "alice" || pass != "s3cret" || req.URL.Query().Get("scope") != "repository:demo/tok:pull" {
				http.Error(w, "bad credentials", http.StatusUnauthorized)
				return
			}
			fmt.Fprintf(w, `{"token":%q,"expires_in":300}`, token)
			return
		case strings.HasPrefix(p, "/storage/"):
			d := strings.TrimPrefix(p, "/storage/")
			data, ok := blobs[d]
			if !ok {
				http.NotFound(w, req)
				return
			}
			w.Header().Set("Content-Length", fmt.Sprint(len(data)))
			r.mu.Lock()
			cut := d == drop && !dropped
			dropped = dropped || cut
			r.mu.Unlock()
			if cut {
				w.Write(data[:len(data)/2])
				w.(http.Flusher).Flush()
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.Close()
				}
				return
			}
			w.Write(data)
			return
		}
		if req.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s/token",service="orbit-test",scope="repository:demo/tok:pull"`, srv.URL))
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
			return
		}
		switch {
		case p == "/v2/":
			w.WriteHeader(http.StatusOK)
		case strings.HasPrefix(p, "/v2/demo/tok/manifests/"):
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Write(manifest)
		case strings.HasPrefix(p, "/v2/demo/tok/blobs/"):
			http.Redirect(w, req, srv.URL+"/storage/"+strings.TrimPrefix(p, "/v2/demo/tok/blobs/"), http.StatusTemporaryRedirect)
		default:
			http.NotFound(w, req)
		}
	}))
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

func (r *ociTokenRegistry) count(path string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hits[path]
}

// TestOCIRegistryTokenRedirectRestart pulls with bearer-token
// authentication from a registry that redirects blobs to a blob store
// which breaks off a layer download once: the layer is downloaded again
// from the start and the image runs.
func TestOCIRegistryTokenRedirectRestart(t *testing.T) {
	t.Parallel()
	img := ociTestImage(t)
	manifest, _ := img.RawManifest()
	cfgName, _ := img.ConfigName()
	cfg, _ := img.RawConfigFile()
	blobs := map[string][]byte{cfgName.String(): cfg}
	layers, _ := img.Layers()
	var base string
	for i, l := range layers {
		d, _ := l.Digest()
		rc, _ := l.Compressed()
		data, _ := io.ReadAll(rc)
		blobs[d.String()] = data
		if i == 0 {
			base = d.String()
		}
	}
	r := ociStartTokenRegistry(t, manifest, blobs, base)
	ref := "docker://" + r.host + "/demo/tok:v1"

	e := newEnv(t)
	ociRefused(t, e, e.run("fetch", "--insecure-options=image,http", ref), "credentials go in auth.d")
	writeFile(t, filepath.Join(e.LocalCfg, "auth.d", "registry.json"),
		`{"rktKind":"dockerAuth","rktVersion":"v1","registries":["`+r.host+`"],"credentials":{"user":"alice","password":"s3cret"}}`)
	res := e.run("run", "--insecure-options=image,http", "--stage1-name=fly", ref)
	if res.Code != 0 || !strings.Contains(res.Stdout, ociWantOutput) {
		t.Fatalf("run through token auth, redirects and a broken-off layer: %s", res)
	}
	if r.count("/token") == 0 {
		t.Fatal("the token server was never asked")
	}
	if got := r.count("/storage/" + base); got != 2 {
		t.Fatalf("the broken-off layer was requested %d times, want 2", got)
	}
	if !strings.Contains(res.Stderr, "starting it again") {
		t.Fatalf("no word of the restart: %s", res.Stderr)
	}
	if l, _ := os.ReadDir(filepath.Join(e.Dir, "cas", "layers", "sha256")); len(l) != 3 {
		t.Fatalf("want 3 stored layers, have %d", len(l))
	}
	if tmp, _ := os.ReadDir(filepath.Join(e.Dir, "cas", "tmp")); len(tmp) != 0 {
		t.Fatalf("the broken-off download left %d temp files", len(tmp))
	}
}
