package fetch

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// testCA makes a CA and a server certificate for hosts, signed by it.
func testCA(t testing.TB, hosts ...string) (*x509.CertPool, tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "orbit test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTpl, caTpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: hosts[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tpl.IPAddresses = append(tpl.IPAddresses, ip)
		} else {
			tpl.DNSNames = append(tpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// file is one thing the test server serves.
type file struct {
	body   []byte
	etag   string
	maxAge int
}

// server is an HTTPS (and optionally HTTP) server that answers for any
// host name: the Fetcher under test dials it whatever the address.
type server struct {
	t     testing.TB
	mu    sync.Mutex
	files map[string]file   // by path
	pages map[string]string // discovery pages by host+path
	hits  map[string]int    // full-body responses by path
	auth  string            // required Authorization header, if set
	tls   *httptest.Server
	plain *httptest.Server
	pool  *x509.CertPool
}

func newServer(t testing.TB, withTLS, withHTTP bool) *server {
	s := &server{t: t, files: map[string]file{}, pages: map[string]string{}, hits: map[string]int{}}
	if withTLS {
		pool, cert := testCA(t, "example.com", "other.org", "127.0.0.1")
		s.pool = pool
		s.tls = httptest.NewUnstartedServer(s)
		s.tls.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		s.tls.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
		s.tls.StartTLS()
		t.Cleanup(s.tls.Close)
	}
	if withHTTP {
		s.plain = httptest.NewServer(s)
		t.Cleanup(s.plain.Close)
	}
	return s
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
		fmt.Fprint(w, page)
		return
	}
	f, ok := s.files[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	if f.etag != "" {
		w.Header().Set("ETag", f.etag)
		if r.Header.Get("If-None-Match") == f.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	}
	if f.maxAge > 0 {
		w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d", f.maxAge))
	}
	s.hits[r.URL.Path]++
	w.Write(f.body)
}

func (s *server) put(path string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = file{body: body}
}

func (s *server) putCached(path string, body []byte, etag string, maxAge int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = file{body: body, etag: etag, maxAge: maxAge}
}

func (s *server) hitCount(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

// discovery serves a discovery page at host+path for names under prefix.
func (s *server) discovery(hostPath, prefix, template, pubkeys string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	page := "<!DOCTYPE html><html><head>"
	if template != "" {
		page += fmt.Sprintf(`<meta name="ac-discovery" content="%s %s">`, prefix, template)
	}
	if pubkeys != "" {
		page += fmt.Sprintf(`<meta name="ac-discovery-pubkeys" content="%s %s">`, prefix, pubkeys)
	}
	s.pages[hostPath] = page + "</head></html>"
}

// dialer sends every connection to the test server: HTTPS ports to the TLS
// server, others to the plain one.
func (s *server) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	_, port, _ := net.SplitHostPort(addr)
	target := s.plain
	if port == "443" {
		target = s.tls
	}
	if target == nil {
		return nil, fmt.Errorf("dial %s: connection refused", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, target.Listener.Addr().String())
}

// testACI builds a gzip-compressed ACI named name with labels and
// dependencies (each "name" or "name@sha512-...").
func testACI(t testing.TB, name string, labels map[string]string, deps ...string) []byte {
	t.Helper()
	m := map[string]any{"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name}
	var ls []map[string]string
	for k, v := range labels {
		ls = append(ls, map[string]string{"name": k, "value": v})
	}
	m["labels"] = ls
	var ds []map[string]any
	for _, d := range deps {
		n, id, _ := strings.Cut(d, "@")
		dep := map[string]any{"imageName": n}
		if id != "" {
			dep["imageID"] = id
		}
		ds = append(ds, dep)
	}
	if ds != nil {
		m["dependencies"] = ds
	}
	mj, _ := json.Marshal(m)
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	tw.WriteHeader(&tar.Header{Name: "manifest", Mode: 0o644, Size: int64(len(mj)), Typeflag: tar.TypeReg})
	tw.Write(mj)
	tw.WriteHeader(&tar.Header{Name: "rootfs", Mode: 0o755, Typeflag: tar.TypeDir})
	content := []byte("hello from " + name)
	tw.WriteHeader(&tar.Header{Name: "rootfs/hello", Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg})
	tw.Write(content)
	tw.Close()
	gz.Close()
	return buf.Bytes()
}

func newSigningKey(t testing.TB, name string) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", name+"@example.com", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func signBytes(t testing.TB, e *openpgp.Entity, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&buf, e, bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func armoredPublic(t testing.TB, e *openpgp.Entity) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, _ := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	return buf.Bytes()
}
