package tests

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// ociRegistry is Debian's docker-registry serving on 127.0.0.1:5000
// inside a network namespace the test made.
type ociRegistry struct {
	ns   string
	host string
	ca   string // the test CA's PEM file, when serving TLS
}

type ociRegistryOptions struct {
	tls            bool
	user, password string // basic auth, when set
}

// ociStartRegistry starts a registry in a new network namespace; both go
// when the test ends.
func ociStartRegistry(t testing.TB, o ociRegistryOptions) *ociRegistry {
	t.Helper()
	reg := requireTool(t, "docker-registry", "docker-registry")
	requireTool(t, "ip", "iproute2")
	dir := t.TempDir()
	ns := fmt.Sprintf("orbit-oci-%d", time.Now().UnixNano()%1e9)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	if out, err := exec.Command("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v: %s", err, out)
	}
	r := &ociRegistry{ns: ns, host: "127.0.0.1:5000"}
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: %s/data\nhttp:\n  addr: 127.0.0.1:5000\n", dir)
	if o.tls {
		r.ca = filepath.Join(dir, "ca.pem")
		cert, key := ociTestCerts(t, dir, r.ca)
		cfg += fmt.Sprintf("  tls:\n    certificate: %s\n    key: %s\n", cert, key)
	}
	if o.user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(o.password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "htpasswd"), o.user+":"+string(hash)+"\n")
		cfg += fmt.Sprintf("auth:\n  htpasswd:\n    realm: orbit-test\n    path: %s/htpasswd\n", dir)
	}
	writeFile(t, filepath.Join(dir, "config.yml"), cfg)
	cmd := exec.Command("ip", "netns", "exec", ns, reg, "serve", filepath.Join(dir, "config.yml"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan bool, 1)
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			if strings.Contains(s.Text(), "listening on") {
				ready <- true
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(20 * time.Second):
		t.Fatal("docker-registry did not start listening")
	}
	return r
}

// ociTestCerts makes a CA and a server certificate for 127.0.0.1.
func ociTestCerts(t testing.TB, dir, caFile string) (string, string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "orbit test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	writeFile(t, caFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))
	cert, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	writeFile(t, cert, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
	return cert, keyFile
}

// push copies an OCI layout's image into the registry with skopeo.
func (r *ociRegistry) push(t testing.TB, layout, repo string, creds ...string) {
	t.Helper()
	skopeo := requireTool(t, "skopeo", "skopeo")
	args := []string{"netns", "exec", r.ns, skopeo, "copy", "--dest-tls-verify=false"}
	if len(creds) > 0 {
		args = append(args, "--dest-creds="+creds[0])
	}
	args = append(args, "oci:"+layout, "docker://"+r.host+"/"+repo)
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v: %s", err, out)
	}
}

// orbit runs orbit inside the registry's namespace.
func (r *ociRegistry) orbit(e *env, args ...string) result {
	e.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", r.ns, binary}, e.args(args...)...)...)
	cmd.Env = append(os.Environ(), e.ExtraEnv...)
	return runCommand(e.t, cmd)
}

// TestOCIRegistryHTTP pulls over plain HTTP, which needs
// --insecure-options=http, and shows layers stored once.
func TestOCIRegistryHTTP(t *testing.T) {
	t.Parallel()
	r := ociStartRegistry(t, ociRegistryOptions{})
	img := ociTestImage(t)
	r.push(t, ociWriteLayout(t, img, "v1"), "demo/app:v1")
	e := newEnv(t)
	ref := "docker://" + r.host + "/demo/app:v1"
	ociRefused(t, e, r.orbit(e, "fetch", "--insecure-options=image", ref), "--insecure-options=http")
	ociRefused(t, e, r.orbit(e, "fetch", "--insecure-options=http", ref), "--insecure-options=image")
	res := r.orbit(e, "run", "--insecure-options=image,http", "--stage1-name=fly", ref)
	if res.Code != 0 || !strings.Contains(res.Stdout, ociWantOutput) {
		t.Fatalf("run from the registry: %s", res)
	}
	if out := e.mustRun("image", "list", "--no-legend").Stdout; !strings.Contains(out, "127.0.0.1:5000/demo/app:v1") {
		t.Fatalf("image list: %s", out)
	}
	layers, _ := os.ReadDir(filepath.Join(e.Dir, "cas", "layers", "sha256"))
	if len(layers) != 3 {
		t.Fatalf("want 3 stored layers, have %d", len(layers))
	}
	// A second image on the same base: only its new layer is downloaded.
	img2 := ociTestImage(t, "echo second")
	r.push(t, ociWriteLayout(t, img2, "v2"), "demo/other:v2")
	res = r.orbit(e, "run", "--insecure-options=image,http", "--stage1-name=fly", "docker://"+r.host+"/demo/other:v2")
	if res.Code != 0 || !strings.Contains(res.Stdout, "second\n") {
		t.Fatalf("second image: %s", res)
	}
	layers, _ = os.ReadDir(filepath.Join(e.Dir, "cas", "layers", "sha256"))
	if len(layers) != 3 {
		t.Fatalf("the images share their layers: want 3 stored, have %d", len(layers))
	}
	// Digest pinning.
	d, _ := img.Digest()
	pinned := "docker://" + r.host + "/demo/app@" + d.String()
	if res := r.orbit(e, "fetch", "--insecure-options=image,http", "--pull-policy=update", pinned); res.Code != 0 {
		t.Fatalf("pinned fetch: %s", res)
	}
	wrong := "docker://" + r.host + "/demo/app@sha256:" + strings.Repeat("ab", 32)
	if res := r.orbit(e, "fetch", "--insecure-options=image,http", wrong); res.Code == 0 {
		t.Fatalf("a digest the registry does not have was fetched: %s", res)
	}
}

// TestOCIRegistryTLSAuth pulls over TLS with a test CA and basic auth,
// credentials from auth.d's dockerAuth and from Docker's config.json.
func TestOCIRegistryTLSAuth(t *testing.T) {
	t.Parallel()
	r := ociStartRegistry(t, ociRegistryOptions{tls: true, user: "alice", password: "s3cret"})
	r.push(t, ociWriteLayout(t, ociTestImage(t), "v1"), "private/app:v1", "alice:s3cret")
	ref := "docker://" + r.host + "/private/app:v1"

	e := newEnv(t)
	ociRefused(t, e, r.orbit(e, "fetch", "--insecure-options=image", ref), "certificate")
	e.ExtraEnv = []string{"SSL_CERT_FILE=" + r.ca}
	ociRefused(t, e, r.orbit(e, "fetch", "--insecure-options=image", ref), "UNAUTHORIZED")

	writeFile(t, filepath.Join(e.LocalCfg, "auth.d", "registry.json"),
		`{"rktKind":"dockerAuth","rktVersion":"v1","registries":["127.0.0.1:5000"],"credentials":{"user":"alice","password":"s3cret"}}`)
	if res := r.orbit(e, "run", "--insecure-options=image", "--stage1-name=fly", ref); res.Code != 0 || !strings.Contains(res.Stdout, ociWantOutput) {
		t.Fatalf("run with dockerAuth credentials: %s", res)
	}

	e2 := newEnv(t)
	docker := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	writeFile(t, filepath.Join(docker, "config.json"), `{"auths":{"127.0.0.1:5000":{"auth":"`+auth+`"}}}`)
	e2.ExtraEnv = []string{"SSL_CERT_FILE=" + r.ca, "DOCKER_CONFIG=" + docker}
	if res := r.orbit(e2, "fetch", "--insecure-options=image", ref); res.Code != 0 {
		t.Fatalf("fetch with config.json credentials: %s", res)
	}
	// --insecure-options=tls accepts the unknown CA.
	e3 := newEnv(t)
	e3.ExtraEnv = []string{"DOCKER_CONFIG=" + docker}
	if res := r.orbit(e3, "fetch", "--insecure-options=image,tls", ref); res.Code != 0 {
		t.Fatalf("fetch with --insecure-options=tls: %s", res)
	}
}

// ociHostileRegistry serves img under /v2/evil/ from a Go server on
// loopback, with blob (a layer or config digest) answered by serveBlob.
func ociHostileRegistry(t *testing.T, manifest []byte, blobs map[string][]byte, stallBlob string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		p := req.URL.Path
		switch {
		case p == "/v2/":
			w.WriteHeader(http.StatusOK)
		case strings.HasPrefix(p, "/v2/evil/manifests/"):
			w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
			w.Write(manifest)
		case strings.HasPrefix(p, "/v2/evil/blobs/"):
			d := strings.TrimPrefix(p, "/v2/evil/blobs/")
			data, ok := blobs[d]
			if !ok {
				http.NotFound(w, req)
				return
			}
			if d == stallBlob {
				w.Header().Set("Content-Length", fmt.Sprint(len(data)))
				w.Write(data[:len(data)/2])
				w.(http.Flusher).Flush()
				<-req.Context().Done()
				return
			}
			w.Write(data)
		default:
			http.NotFound(w, req)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestOCIRegistryHostile: a registry that stops sending, and one whose
// manifest is not the one the digest names.
func TestOCIRegistryHostile(t *testing.T) {
	t.Parallel()
	img := ociTestImage(t)
	manifest, _ := img.RawManifest()
	cfgName, _ := img.ConfigName()
	cfg, _ := img.RawConfigFile()
	blobs := map[string][]byte{cfgName.String(): cfg}
	layers, _ := img.Layers()
	var top string
	for _, l := range layers {
		d, _ := l.Digest()
		rc, _ := l.Compressed()
		data, _ := io.ReadAll(rc)
		blobs[d.String()] = data
		top = d.String()
	}
	t.Run("stall", func(t *testing.T) {
		host := ociHostileRegistry(t, manifest, blobs, top)
		e := newEnv(t)
		e.ExtraEnv = []string{"ORBIT_STALL_TIMEOUT=2s"}
		start := time.Now()
		ociRefused(t, e, e.run("fetch", "--insecure-options=image,http", "docker://"+host+"/evil:v1"), "sent nothing for 2s")
		if time.Since(start) > 30*time.Second {
			t.Fatalf("a stalled registry held fetch for %s", time.Since(start))
		}
	})
	t.Run("manifest-not-its-digest", func(t *testing.T) {
		host := ociHostileRegistry(t, manifest, blobs, "")
		e := newEnv(t)
		ref := "docker://" + host + "/evil@sha256:" + strings.Repeat("12", 32)
		ociRefused(t, e, e.run("fetch", "--insecure-options=image,http", ref), "digest")
	})
	t.Run("layer-not-its-digest", func(t *testing.T) {
		forged := map[string][]byte{}
		for k, v := range blobs {
			forged[k] = v
		}
		forged[top] = blobs[cfgName.String()]
		host := ociHostileRegistry(t, manifest, forged, "")
		e := newEnv(t)
		ociRefused(t, e, e.run("fetch", "--insecure-options=image,http", "docker://"+host+"/evil:v1"), "does not match")
		if l, _ := os.ReadDir(filepath.Join(e.Dir, "cas", "layers", "sha256")); len(l) != 2 {
			t.Fatalf("want only the two good layers stored, have %d", len(l))
		}
	})
}
