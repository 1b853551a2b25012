package tests

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"golang.org/x/sys/unix"
)

// fetchNet is a network namespace of the test's own, with its loopback up
// and an /etc/hosts (bind-mounted by `ip netns exec`) that sends the test
// domains to 127.0.0.1, so discovery finds servers on ports 443 and 80.
type fetchNet struct {
	t    testing.TB
	name string
}

// fetchDomains are the names the namespace's /etc/hosts resolves.
var fetchDomains = []string{"example.com", "other.org"}

func newFetchNet(t testing.TB) *fetchNet {
	t.Helper()
	requireTool(t, "ip", "iproute2")
	n := &fetchNet{t: t, name: fmt.Sprintf("orbit-fetch-%d-%d", os.Getpid(), time.Now().UnixNano())}
	mustCmd(t, "ip", "netns", "add", n.name)
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", n.name).Run()
		os.RemoveAll(filepath.Join("/etc/netns", n.name))
	})
	mustCmd(t, "ip", "-n", n.name, "link", "set", "lo", "up")
	hosts := "127.0.0.1 localhost " + strings.Join(fetchDomains, " ") + "\n"
	writeFile(t, filepath.Join("/etc/netns", n.name, "hosts"), hosts)
	return n
}

func mustCmd(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// listen opens a TCP listener inside the namespace: on a thread of its own
// that enters the namespace, so the rest of the test process stays out.
func (n *fetchNet) listen(addr string) net.Listener {
	n.t.Helper()
	type result struct {
		l   net.Listener
		err error
	}
	done := make(chan result)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- result{nil, err}
			return
		}
		defer orig.Close()
		target, err := os.Open(filepath.Join("/var/run/netns", n.name))
		if err != nil {
			done <- result{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{nil, err}
			return
		}
		l, err := net.Listen("tcp", addr)
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread() // back home: the thread may be reused
		} // else the locked thread ends with this goroutine
		done <- result{l, err}
	}()
	r := <-done
	if r.err != nil {
		n.t.Fatalf("listening on %s in %s: %v", addr, n.name, r.err)
	}
	return r.l
}

// command runs orbit with e's flags inside the namespace.
func (n *fetchNet) command(e *env, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.name, binary}, e.args(args...)...)...)
	cmd.Env = append(os.Environ(), e.ExtraEnv...)
	return cmd
}

// run runs orbit in the namespace, with stdin if given.
func (n *fetchNet) run(e *env, stdin string, args ...string) result {
	n.t.Helper()
	cmd := n.command(e, args...)
	cmd.Stdin = strings.NewReader(stdin)
	return runCommand(n.t, cmd)
}

func (n *fetchNet) mustRun(e *env, stdin string, args ...string) result {
	n.t.Helper()
	r := n.run(e, stdin, args...)
	if r.Code != 0 {
		n.t.Fatalf("orbit %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// fetchCA is a CA made for the test, and the PEM file a user would point
// SSL_CERT_FILE at.
type fetchCA struct {
	pemFile string
	cert    tls.Certificate // for the test domains, signed by the CA
}

func newFetchCA(t testing.TB) *fetchCA {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "orbit functional test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(2 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: fetchDomains[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(2 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames: fetchDomains, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	writeFile(t, p, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))
	return &fetchCA{pemFile: p, cert: tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}}
}

// fetchServer serves discovery pages, images, signatures and keys, on
// HTTPS (443) and plain HTTP (80) in the namespace, as configured.
type fetchServer struct {
	mu    sync.Mutex
	files map[string][]byte // by path
	etags map[string]string
	pages map[string]string // discovery pages by host+path
	hits  map[string]int    // full responses by path
	auth  string            // required Authorization, if set
}

func newFetchServer() *fetchServer {
	return &fetchServer{files: map[string][]byte{}, etags: map[string]string{}, pages: map[string]string{}, hits: map[string]int{}}
}

// serveTLS and servePlain start the server on l, stopping at cleanup.
func (s *fetchServer) serveTLS(t testing.TB, l net.Listener, ca *fetchCA) {
	srv := &http.Server{Handler: s, ErrorLog: log.New(io.Discard, "", 0)}
	tl := tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{ca.cert}})
	go srv.Serve(tl)
	t.Cleanup(func() { srv.Close() })
}

func (s *fetchServer) servePlain(t testing.TB, l net.Listener) {
	srv := &http.Server{Handler: s, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

func (s *fetchServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.auth != "" && r.Header.Get("Authorization") != s.auth {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	if r.URL.Query().Get("ac-discovery") == "1" {
		page, ok := s.pages[r.Host+r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, page)
		return
	}
	body, ok := s.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if tag := s.etags[r.URL.Path]; tag != "" {
		w.Header().Set("ETag", tag)
		if r.Header.Get("If-None-Match") == tag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	s.hits[r.URL.Path]++
	w.Write(body)
}

func (s *fetchServer) put(path string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = body
	s.etags[path] = fmt.Sprintf(`"%x"`, len(body)*7919+int(body[len(body)/2]))
}

func (s *fetchServer) hitCount(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// publishDiscovery serves a discovery page for prefix at host+path.
func (s *fetchServer) publishDiscovery(hostPath, prefix, imageTemplate, keyURL string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	page := `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">`
	if imageTemplate != "" {
		page += fmt.Sprintf("\n<meta name=\"ac-discovery\" content=\"%s %s\">", prefix, imageTemplate)
	}
	if keyURL != "" {
		page += fmt.Sprintf("\n<meta name=\"ac-discovery-pubkeys\" content=\"%s %s\">", prefix, keyURL)
	}
	s.pages[hostPath] = page + "\n</head></html>"
}

// fetchACI writes a small gzip ACI named name:version for this machine,
// depending on deps, and returns its bytes.
func fetchACI(t testing.TB, name, version string, deps ...string) []byte {
	t.Helper()
	m := imageManifest(name)
	labels := m["labels"].([]map[string]string)
	m["labels"] = append(labels, map[string]string{"name": "version", "value": version})
	var ds []map[string]any
	for _, d := range deps {
		ds = append(ds, map[string]any{"imageName": d})
	}
	if ds != nil {
		m["dependencies"] = ds
	}
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	writeFile(t, filepath.Join(rootfs, "etc", "image-name"), name+"\n")
	p := writeACI(t, filepath.Join(t.TempDir(), "image.aci"), rootfs, m)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// pgpKey makes an EdDSA key with go-crypto, created at created and valid
// for lifetime (0: forever).
func pgpKey(t testing.TB, name string, created time.Time, lifetime time.Duration) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", strings.ReplaceAll(strings.ToLower(name), " ", ".")+"@example.com", &packet.Config{
		Algorithm:       packet.PubKeyAlgoEdDSA,
		Time:            func() time.Time { return created },
		KeyLifetimeSecs: uint32(lifetime / time.Second),
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func pgpSign(t testing.TB, e *openpgp.Entity, data []byte, at time.Time) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&buf, e, bytes.NewReader(data), &packet.Config{Time: func() time.Time { return at }}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func pgpPublic(t testing.TB, e *openpgp.Entity) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, _ := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return buf.Bytes()
}

func pgpFingerprint(e *openpgp.Entity) string { return fmt.Sprintf("%x", e.PrimaryKey.Fingerprint) }

// gpgHome is a throwaway gpg home for signing the way publishers do.
type gpgHome struct {
	t   testing.TB
	dir string
}

func newGPG(t testing.TB) *gpgHome {
	t.Helper()
	requireTool(t, "gpg", "gnupg")
	// gpg-agent's socket path must stay short, so not below t.TempDir().
	dir, err := os.MkdirTemp("", "orbit-gpg-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o700)
	g := &gpgHome{t: t, dir: dir}
	t.Cleanup(func() {
		c := exec.Command("gpgconf", "--kill", "all")
		c.Env = append(os.Environ(), "GNUPGHOME="+dir)
		c.Run()
		os.RemoveAll(dir)
	})
	return g
}

func (g *gpgHome) run(stdin []byte, args ...string) []byte {
	g.t.Helper()
	cmd := exec.Command("gpg", append([]string{"--batch", "--yes", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
	cmd.Env = append(os.Environ(), "GNUPGHOME="+g.dir)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		g.t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return out.Bytes()
}

// fingerprint of the key for uid, lowercase.
func (g *gpgHome) fingerprint(uid string) string {
	out := string(g.run(nil, "--with-colons", "--list-keys", uid))
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Split(line, ":"); len(f) > 9 && f[0] == "fpr" {
			return strings.ToLower(f[9])
		}
	}
	g.t.Fatalf("no fingerprint for %s in %s", uid, out)
	return ""
}
