package tests

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

// ociSignLookaside serves dir over HTTP on 127.0.0.1:5080 inside the
// registry's namespace (busybox httpd), as a lookaside server would.
func (r *ociRegistry) ociSignLookaside(t *testing.T, dir string) {
	t.Helper()
	bb := requireTool(t, "busybox", "busybox-static")
	cmd := exec.Command("ip", "netns", "exec", r.ns, bb, "httpd", "-f", "-p", "127.0.0.1:5080", "-h", dir)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := exec.Command("ip", "netns", "exec", r.ns, bb, "wget", "-q", "-O", "-", "http://127.0.0.1:5080/").CombinedOutput()
		if !strings.Contains(string(out), "refused") {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("busybox httpd did not start")
}

// ociSignPush pushes a layout's image with skopeo, signed with gpg's key
// fpr into the staging directory when fpr is set.
func (r *ociRegistry) ociSignPush(t *testing.T, g *gpgHome, regd, layout, repo, fpr string) {
	t.Helper()
	skopeo := requireTool(t, "skopeo", "skopeo")
	args := []string{"netns", "exec", r.ns, "env", "GNUPGHOME=" + g.dir, skopeo, "--registries.d", regd, "copy", "--dest-tls-verify=false"}
	if fpr != "" {
		args = append(args, "--sign-by", fpr)
	}
	args = append(args, "oci:"+layout, "docker://"+r.host+"/"+repo)
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v: %s", err, out)
	}
}

// ociSigPath is a manifest's signature-1 in a lookaside directory.
func ociSigPath(dir, repo string, img v1.Image) string {
	d, _ := img.Digest()
	return filepath.Join(dir, repo+"@sha256="+d.Hex, "signature-1")
}

// ociRefusedNoLayers is ociRefused, and no layer was admitted either.
func ociRefusedNoLayers(t *testing.T, e *env, r result, want string) {
	t.Helper()
	ociRefused(t, e, r, want)
	t.Log(strings.TrimSpace(r.Stderr))
	if l, _ := os.ReadDir(filepath.Join(e.Dir, "cas", "layers", "sha256")); len(l) != 0 {
		t.Fatalf("a refused image left %d layers in the store", len(l))
	}
}

// TestOCISimpleSigning verifies OpenPGP "simple signing" signatures made
// by skopeo copy --sign-by with real gpg, from a lookaside server that
// registries.d names, against keys trusted with orbit trust.
func TestOCISimpleSigning(t *testing.T) {
	t.Parallel()
	r := ociStartRegistry(t, ociRegistryOptions{tls: true})
	g := newGPG(t)
	g.run(nil, "--quick-gen-key", "Signer <signer@example.org>", "ed25519", "sign", "1y")
	g.run(nil, "--quick-gen-key", "Stranger <stranger@example.org>", "ed25519", "sign", "1y")
	fpr, stranger := g.fingerprint("signer@example.org"), g.fingerprint("stranger@example.org")
	pub := filepath.Join(t.TempDir(), "signer.asc")
	writeFile(t, pub, string(g.run(nil, "--armor", "--export", "signer@example.org")))

	staging := t.TempDir()
	os.Chmod(staging, 0o755)
	regd := t.TempDir()
	writeFile(t, filepath.Join(regd, "test.yaml"), fmt.Sprintf("docker:\n  %s:\n    lookaside: http://127.0.0.1:5080\n    lookaside-staging: file://%s\n", r.host, staging))
	r.ociSignLookaside(t, staging)

	img := ociTestImage(t)
	lay := ociWriteLayout(t, img, "v1")
	r.ociSignPush(t, g, regd, lay, "signed/app:v1", fpr)

	e := newEnv(t)
	e.ExtraEnv = []string{"SSL_CERT_FILE=" + r.ca}
	// orbit's own registries.d, in its local configuration.
	writeFile(t, filepath.Join(e.LocalCfg, "registries.d", "lookaside.yaml"), fmt.Sprintf("docker:\n  %s:\n    lookaside: http://127.0.0.1:5080\n", r.host))
	ref := "docker://" + r.host + "/signed/app:v1"

	// No key trusted yet.
	ociRefusedNoLayers(t, e, r.orbit(e, "fetch", ref), "no key is trusted")
	e.mustRun("trust", "--skip-fingerprint-review", "--prefix", r.host+"/signed", pub)
	res := r.orbit(e, "run", "--stage1-name=fly", ref)
	if res.Code != 0 || !strings.Contains(res.Stdout, ociWantOutput) {
		t.Fatalf("a signed image without --insecure-options: %s", res)
	}
	if out := e.mustRun("image", "list", "--no-legend").Stdout; !strings.Contains(out, "signed/app") {
		t.Fatalf("image list: %s", out)
	}

	refused := func(t *testing.T, ref, want string) {
		t.Helper()
		e := newEnv(t)
		e.ExtraEnv = []string{"SSL_CERT_FILE=" + r.ca}
		writeFile(t, filepath.Join(e.LocalCfg, "registries.d", "lookaside.yaml"), fmt.Sprintf("docker:\n  %s:\n    lookaside: http://127.0.0.1:5080\n", r.host))
		e.mustRun("trust", "--skip-fingerprint-review", "--prefix", r.host+"/signed", pub)
		ociRefusedNoLayers(t, e, r.orbit(e, "fetch", ref), want)
	}
	t.Run("missing", func(t *testing.T) {
		r.ociSignPush(t, g, regd, ociWriteLayout(t, ociTestImage(t, "echo unsigned"), "v1"), "signed/unsigned:v1", "")
		refused(t, "docker://"+r.host+"/signed/unsigned:v1", "has no signature")
	})
	t.Run("untrusted-key", func(t *testing.T) {
		r.ociSignPush(t, g, regd, ociWriteLayout(t, ociTestImage(t, "echo stranger"), "v1"), "signed/stranger:v1", stranger)
		refused(t, "docker://"+r.host+"/signed/stranger:v1", "not trusted")
	})
	t.Run("bad", func(t *testing.T) {
		bad := ociTestImage(t, "echo bad")
		r.ociSignPush(t, g, regd, ociWriteLayout(t, bad, "v1"), "signed/bad:v1", fpr)
		p := ociSigPath(staging, "signed/bad", bad)
		sig, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sig[len(sig)-3] ^= 0xff
		os.WriteFile(p, sig, 0o644)
		refused(t, "docker://"+r.host+"/signed/bad:v1", "signature")
	})
	t.Run("mismatched-identity", func(t *testing.T) {
		// The signed manifest tagged again: the signature names v1.
		r.ociSignPush(t, g, regd, lay, "signed/app:other", "")
		refused(t, "docker://"+r.host+"/signed/app:other", "signature is for")
	})
	t.Run("wrong-digest", func(t *testing.T) {
		// A signature for one manifest replayed for another under the
		// same name, as a hostile registry moving a tag would.
		first, second := ociTestImage(t, "echo first"), ociTestImage(t, "echo second")
		r.ociSignPush(t, g, regd, ociWriteLayout(t, first, "v1"), "signed/moved:v1", fpr)
		r.ociSignPush(t, g, regd, ociWriteLayout(t, second, "v1"), "signed/moved:v1", "")
		sig, err := os.ReadFile(ociSigPath(staging, "signed/moved", first))
		if err != nil {
			t.Fatal(err)
		}
		p := ociSigPath(staging, "signed/moved", second)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, sig, 0o644)
		refused(t, "docker://"+r.host+"/signed/moved:v1", "not sha256:")
	})
}

// ociNetnsTransport dials inside a network namespace, so the test can
// push with go-containerregistry to the registry that lives there.
func ociNetnsTransport(t *testing.T, ns string) http.RoundTripper {
	t.Helper()
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			return nil, err
		}
		defer self.Close()
		target, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			return nil, err
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			return nil, err
		}
		defer unix.Setns(int(self.Fd()), unix.CLONE_NEWNET)
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	return &http.Transport{DialContext: dial}
}

// ociCosignSign pushes a cosign key-pair signature of img as repo's
// sha256-<hex>.sig tag: the simple signing payload naming identity and
// digest, signed with key. tamper changes the payload after signing.
func ociCosignSign(t *testing.T, r *ociRegistry, repo string, digest v1.Hash, identity, typ string, key *ecdsa.PrivateKey, tamper bool) {
	t.Helper()
	payload, _ := json.Marshal(map[string]any{
		"critical": map[string]any{
			"identity": map[string]string{"docker-reference": identity},
			"image":    map[string]string{"docker-manifest-digest": digest.String()},
			"type":     typ,
		},
		"optional": nil,
	})
	sum := sha256.Sum256(payload)
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	if tamper {
		payload = append(payload, ' ')
	}
	layer := static.NewLayer(payload, "application/vnd.dev.cosign.simplesigning.v1+json")
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer, Annotations: map[string]string{
		"dev.cosignproject.cosign/signature": base64.StdEncoding.EncodeToString(sig)}})
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	tag, err := name.NewTag(r.host+"/"+repo+":sha256-"+digest.Hex+".sig", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img, remote.WithTransport(ociNetnsTransport(t, r.ns))); err != nil {
		t.Fatalf("pushing the signature: %v", err)
	}
}

// ociCosignKey makes an ECDSA P-256 key pair and writes the public half
// as PEM, as cosign generate-key-pair does.
func ociCosignKey(t *testing.T) (*ecdsa.PrivateKey, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	p := filepath.Join(t.TempDir(), "cosign.pub")
	writeFile(t, p, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	return key, p
}

// TestOCICosign verifies cosign key-pair signatures attached in the
// registry against a PEM public key trusted with orbit trust.
func TestOCICosign(t *testing.T) {
	t.Parallel()
	r := ociStartRegistry(t, ociRegistryOptions{})
	key, pub := ociCosignKey(t)
	other, _ := ociCosignKey(t)
	const typ = "cosign container image signature"
	push := func(t *testing.T, repo string, cmd string) v1.Hash {
		img := ociTestImage(t, cmd)
		r.push(t, ociWriteLayout(t, img, "v1"), repo+":v1")
		d, _ := img.Digest()
		return d
	}
	newE := func(t *testing.T) *env {
		e := newEnv(t)
		res := e.mustRun("trust", "--skip-fingerprint-review", "--prefix", r.host+"/cosign", pub)
		if !strings.Contains(res.Stderr, ".pem") {
			t.Fatalf("trusting a PEM key: %s", res)
		}
		return e
	}

	d := push(t, "cosign/app", "echo cosign-verified")
	ociCosignSign(t, r, "cosign/app", d, r.host+"/cosign/app:v1", typ, key, false)
	e := newE(t)
	res := r.orbit(e, "run", "--insecure-options=http", "--stage1-name=fly", "docker://"+r.host+"/cosign/app:v1")
	if res.Code != 0 || !strings.Contains(res.Stdout, "cosign-verified") {
		t.Fatalf("a cosign-signed image without --insecure-options=image: %s", res)
	}
	keys, _ := filepath.Glob(filepath.Join(e.LocalCfg, "trustedkeys", "prefix.d", "127.0.0.1_5000", "cosign", "*.pem"))
	if len(keys) != 1 {
		t.Fatalf("want the PEM key stored as prefix.d/127.0.0.1_5000/cosign/<sha256>.pem, have %v", keys)
	}

	cases := []struct {
		name, identity, typ string
		key                 *ecdsa.PrivateKey
		tamper, unsigned    bool
		want                string
	}{
		{name: "missing", unsigned: true, want: "has no signature"},
		{name: "untrusted-key", key: other, want: "not made by a public key"},
		{name: "bad", tamper: true, want: "not made by a public key"},
		{name: "mismatched-identity", identity: r.host + "/cosign/elsewhere:v1", want: "signature is for"},
		{name: "wrong-type", typ: "atomic container signature", want: "type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			repo := "cosign/" + c.name
			d := push(t, repo, "echo "+c.name)
			if !c.unsigned {
				k, id, ty := key, r.host+"/"+repo+":v1", typ
				if c.key != nil {
					k = c.key
				}
				if c.identity != "" {
					id = c.identity
				}
				if c.typ != "" {
					ty = c.typ
				}
				ociCosignSign(t, r, repo, d, id, ty, k, c.tamper)
			}
			e := newE(t)
			ociRefusedNoLayers(t, e, r.orbit(e, "fetch", "--insecure-options=http", "docker://"+r.host+"/"+repo+":v1"), c.want)
		})
	}
	t.Run("wrong-digest", func(t *testing.T) {
		// A good signature of another manifest, attached to this one.
		repo := "cosign/replay"
		first := push(t, repo, "echo first")
		second := push(t, repo, "echo second")
		ociCosignSignAs(t, r, repo, second, first, r.host+"/"+repo+":v1", key)
		e := newE(t)
		ociRefusedNoLayers(t, e, r.orbit(e, "fetch", "--insecure-options=http", "docker://"+r.host+"/"+repo+":v1"), "not sha256:")
	})
}

// ociCosignSignAs attaches, under at's signature tag, a good signature
// of the payload for another digest.
func ociCosignSignAs(t *testing.T, r *ociRegistry, repo string, at, signed v1.Hash, identity string, key *ecdsa.PrivateKey) {
	t.Helper()
	payload, _ := json.Marshal(map[string]any{"critical": map[string]any{
		"identity": map[string]string{"docker-reference": identity},
		"image":    map[string]string{"docker-manifest-digest": signed.String()},
		"type":     "cosign container image signature"}})
	sum := sha256.Sum256(payload)
	sig, _ := ecdsa.SignASN1(rand.Reader, key, sum[:])
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: static.NewLayer(payload, "application/vnd.dev.cosign.simplesigning.v1+json"),
		Annotations: map[string]string{"dev.cosignproject.cosign/signature": base64.StdEncoding.EncodeToString(sig)}})
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	tag, _ := name.NewTag(r.host+"/"+repo+":sha256-"+at.Hex+".sig", name.Insecure)
	if err := remote.Write(tag, img, remote.WithTransport(ociNetnsTransport(t, r.ns))); err != nil {
		t.Fatalf("pushing the signature: %v", err)
	}
}
