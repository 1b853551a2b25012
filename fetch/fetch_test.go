package fetch

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/insecure"
	"github.com/orbit-containers/orbit/store"
)

type fixture struct {
	t      *testing.T
	srv    *server
	dir    string
	store  *store.Store
	local  string
	system string
}

func newFixture(t *testing.T, srv *server) *fixture {
	dir := t.TempDir()
	st, err := store.Open(filepath.Join(dir, "cas"))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, srv: srv, dir: dir, store: st, local: filepath.Join(dir, "etc"), system: filepath.Join(dir, "usr-lib")}
}

// fetcher builds a Fetcher whose connections all go to the test server.
func (fx *fixture) fetcher(opts insecure.Options, tofu bool, trustCA bool) *Fetcher {
	cfg := Config{
		Store: fx.store, Insecure: opts, TrustKeysFromHTTPS: tofu,
		LocalConfig: fx.local, SystemConfig: fx.system,
	}
	if trustCA && fx.srv.pool != nil {
		cfg.RootCAs = fx.srv.pool
	}
	f, err := New(cfg)
	if err != nil {
		fx.t.Fatal(err)
	}
	f.client.Transport.(*http.Transport).DialContext = fx.srv.dial
	return f
}

func (fx *fixture) trust(prefix string, e *openpgp.Entity) {
	if _, err := New(Config{LocalConfig: fx.local}); err != nil {
		fx.t.Fatal(err)
	}
	f := fx.fetcher(0, false, true)
	var err error
	if prefix == "" {
		_, err = f.keystore.AddRoot(e)
	} else {
		_, err = f.keystore.AddPrefix(prefix, e)
	}
	if err != nil {
		fx.t.Fatal(err)
	}
}

func (fx *fixture) images() int {
	imgs, err := fx.store.List()
	if err != nil {
		fx.t.Fatal(err)
	}
	return len(imgs)
}

const tpl = "https://example.com/images/{name}-{version}-{os}-{arch}.{ext}"

// publish serves a signed image for name:version under the discovery
// template above.
func publish(t *testing.T, srv *server, key *openpgp.Entity, name, version string, deps ...string) []byte {
	goos, goarch := appcOSArch()
	aci := testACI(t, name, map[string]string{"version": version, "os": goos, "arch": goarch}, deps...)
	p := "/images/" + name + "-" + version + "-" + goos + "-" + goarch + ".aci"
	srv.put(p, aci)
	if key != nil {
		srv.put(p+".asc", signBytes(t, key, aci))
	}
	host, path, _ := strings.Cut(name, "/")
	srv.discovery(host+"/"+path, name, tpl, "https://example.com/keys/"+host+".asc")
	return aci
}

func TestFetchByDiscovery(t *testing.T) {
	srv := newServer(t, true, false)
	key := newSigningKey(t, "publisher")
	publish(t, srv, key, "example.com/hello", "1.0")
	fx := newFixture(t, srv)
	fx.trust("example.com/hello", key)
	f := fx.fetcher(0, false, true)
	id, err := f.Fetch(context.Background(), "example.com/hello:1.0", PullNew, "")
	if err != nil {
		t.Fatal(err)
	}
	img, err := fx.store.Get(id)
	if err != nil || img.Name != "example.com/hello" {
		t.Fatalf("stored %+v, %v", img, err)
	}
	// The store answers the second time: no download.
	id2, err := f.Fetch(context.Background(), "example.com/hello:1.0", PullNew, "")
	if err != nil || id2 != id {
		t.Fatalf("second fetch: %s, %v", id2, err)
	}
	goos, goarch := appcOSArch()
	if n := srv.hitCount("/images/example.com/hello-1.0-" + goos + "-" + goarch + ".aci"); n != 1 {
		t.Fatalf("image downloaded %d times, want 1", n)
	}
	// The temp download is gone.
	left, _ := os.ReadDir(filepath.Join(fx.store.Dir(), "tmp"))
	for _, e := range left {
		if strings.HasPrefix(e.Name(), "fetch-") {
			t.Fatalf("download left behind: %s", e.Name())
		}
	}
}

func TestFetchRootKeyAndWalkUp(t *testing.T) {
	srv := newServer(t, true, false)
	key := newSigningKey(t, "root")
	goos, goarch := appcOSArch()
	aci := testACI(t, "example.com/deep/app", map[string]string{"version": "2", "os": goos, "arch": goarch})
	srv.put("/d/app-2.aci", aci)
	srv.put("/d/app-2.aci.asc", signBytes(t, key, aci))
	// Only the domain's page answers: discovery walks up to it.
	srv.discovery("example.com/", "example.com/", "https://example.com/d/app-{version}.{ext}", "")
	fx := newFixture(t, srv)
	fx.trust("", key)
	if _, err := fx.fetcher(0, false, true).Fetch(context.Background(), "example.com/deep/app:2", PullNew, ""); err != nil {
		t.Fatal(err)
	}
}

func TestFetchRefused(t *testing.T) {
	goos, goarch := appcOSArch()
	imgPath := "/images/example.com/hello-1.0-" + goos + "-" + goarch + ".aci"
	cases := []struct {
		name  string
		setup func(t *testing.T, srv *server, fx *fixture)
		want  string
	}{
		{"untrusted key", func(t *testing.T, srv *server, fx *fixture) {
			publish(t, srv, newSigningKey(t, "stranger"), "example.com/hello", "1.0")
			fx.trust("example.com/hello", newSigningKey(t, "publisher"))
		}, "not trusted"},
		{"no key for prefix", func(t *testing.T, srv *server, fx *fixture) {
			publish(t, srv, newSigningKey(t, "stranger"), "example.com/hello", "1.0")
			fx.trust("example.com/other", newSigningKey(t, "publisher"))
		}, "no key is trusted"},
		{"tampered", func(t *testing.T, srv *server, fx *fixture) {
			key := newSigningKey(t, "publisher")
			aci := publish(t, srv, key, "example.com/hello", "1.0")
			bad := append([]byte(nil), aci...)
			bad[len(bad)-10] ^= 0xff
			srv.put(imgPath, bad)
			fx.trust("example.com/hello", key)
		}, ""},
		{"missing signature", func(t *testing.T, srv *server, fx *fixture) {
			key := newSigningKey(t, "publisher")
			publish(t, srv, nil, "example.com/hello", "1.0")
			fx.trust("example.com/hello", key)
		}, "has no signature"},
		{"wrong name", func(t *testing.T, srv *server, fx *fixture) {
			key := newSigningKey(t, "publisher")
			evil := testACI(t, "example.com/evil", nil)
			publish(t, srv, key, "example.com/hello", "1.0")
			srv.put(imgPath, evil)
			srv.put(imgPath+".asc", signBytes(t, key, evil))
			fx.trust("example.com", key)
		}, "not example.com/hello"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := newServer(t, true, false)
			fx := newFixture(t, srv)
			c.setup(t, srv, fx)
			_, err := fx.fetcher(0, false, true).Fetch(context.Background(), "example.com/hello:1.0", PullNew, "")
			if !errors.Is(err, errdefs.ErrUntrusted) {
				t.Fatalf("error %v, want ErrUntrusted", err)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "example.com/") {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
			if n := fx.images(); n != 0 {
				t.Fatalf("%d images entered the store", n)
			}
			// --insecure-options=image takes it anyway (except a name
			// mismatch, which is not about signatures).
			if c.name != "wrong name" && c.name != "tampered" {
				if _, err := fx.fetcher(insecure.Image, false, true).Fetch(context.Background(), "example.com/hello:1.0", PullNew, ""); err != nil {
					t.Fatalf("with insecure image: %v", err)
				}
			}
		})
	}
}

func TestDependencyChainWithBadLink(t *testing.T) {
	srv := newServer(t, true, false)
	good := newSigningKey(t, "good")
	bad := newSigningKey(t, "bad")
	publish(t, srv, good, "example.com/app", "1", "example.com/mid")
	publish(t, srv, good, "example.com/mid", "latest", "example.com/base")
	publish(t, srv, bad, "example.com/base", "latest")
	fx := newFixture(t, srv)
	fx.trust("example.com", good)
	_, err := fx.fetcher(0, false, true).Fetch(context.Background(), "example.com/app:1", PullNew, "")
	if !errors.Is(err, errdefs.ErrUntrusted) || !strings.Contains(err.Error(), "example.com/base") {
		t.Fatalf("error %v, want the untrusted base named", err)
	}
	if n := fx.images(); n != 0 {
		t.Fatalf("%d images entered the store", n)
	}
	// Fixed: the whole chain comes in.
	publish(t, srv, good, "example.com/base", "latest")
	if _, err := fx.fetcher(0, false, true).Fetch(context.Background(), "example.com/app:1", PullNew, ""); err != nil {
		t.Fatal(err)
	}
	if n := fx.images(); n != 3 {
		t.Fatalf("%d images stored, want 3", n)
	}
}

func TestDependencyPinnedByID(t *testing.T) {
	srv := newServer(t, true, false)
	key := newSigningKey(t, "k")
	publish(t, srv, key, "example.com/base", "latest")
	wrongID := "sha512-" + strings.Repeat("0", 128)
	publish(t, srv, key, "example.com/app", "1", "example.com/base@"+wrongID)
	fx := newFixture(t, srv)
	fx.trust("example.com", key)
	_, err := fx.fetcher(0, false, true).Fetch(context.Background(), "example.com/app:1", PullNew, "")
	if !errors.Is(err, errdefs.ErrUntrusted) || !strings.Contains(err.Error(), wrongID) {
		t.Fatalf("error %v, want the ID mismatch", err)
	}
}

func TestDependencyCycle(t *testing.T) {
	srv := newServer(t, true, false)
	key := newSigningKey(t, "k")
	publish(t, srv, key, "example.com/a", "latest", "example.com/b")
	publish(t, srv, key, "example.com/b", "latest", "example.com/a")
	fx := newFixture(t, srv)
	fx.trust("example.com", key)
	_, err := fx.fetcher(0, false, true).Fetch(context.Background(), "example.com/a", PullNew, "")
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("error %v, want a cycle", err)
	}
}

func TestHTTPCaching(t *testing.T) {
	srv := newServer(t, true, false)
	key := newSigningKey(t, "k")
	aci := testACI(t, "example.com/c", nil)
	srv.putCached("/c.aci", aci, `"v1"`, 0)
	srv.put("/c.aci.asc", signBytes(t, key, aci))
	aged := testACI(t, "example.com/aged", nil)
	srv.putCached("/aged.aci", aged, "", 3600)
	srv.put("/aged.aci.asc", signBytes(t, key, aged))
	fx := newFixture(t, srv)
	fx.trust("example.com", key)
	f := fx.fetcher(0, false, true)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if _, err := f.Fetch(ctx, "https://example.com/c.aci", PullUpdate, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Fetch(ctx, "https://example.com/aged.aci", PullUpdate, ""); err != nil {
			t.Fatal(err)
		}
	}
	if n := srv.hitCount("/c.aci"); n != 1 {
		t.Fatalf("ETag image downloaded %d times, want 1 (then 304s)", n)
	}
	if n := srv.hitCount("/aged.aci"); n != 1 {
		t.Fatalf("max-age image downloaded %d times, want 1", n)
	}
	// A new version behind the same URL is downloaded and verified.
	aci2 := testACI(t, "example.com/c", map[string]string{"version": "2"})
	srv.putCached("/c.aci", aci2, `"v2"`, 0)
	srv.put("/c.aci.asc", signBytes(t, key, aci2))
	id, err := f.Fetch(ctx, "https://example.com/c.aci", PullUpdate, "")
	if err != nil {
		t.Fatal(err)
	}
	img, _ := fx.store.Get(id)
	if v, _ := img.Labels.Get("version"); v != "2" {
		t.Fatalf("got version %q after update", v)
	}
	// Never: only the store.
	if _, err := f.Fetch(ctx, "https://example.com/none.aci", PullNever, ""); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("pull never: %v", err)
	}
}

func TestTransportSecurity(t *testing.T) {
	key := newSigningKey(t, "k")
	ctx := context.Background()

	t.Run("plain HTTP discovery needs the option", func(t *testing.T) {
		srv := newServer(t, false, true)
		publish(t, srv, key, "example.com/hello", "1.0")
		goos, goarch := appcOSArch()
		srv.discovery("example.com/hello", "example.com/hello", "http://example.com/images/{name}-{version}-{os}-{arch}.{ext}", "")
		_ = goos + goarch
		fx := newFixture(t, srv)
		fx.trust("example.com", key)
		_, err := fx.fetcher(0, false, true).Fetch(ctx, "example.com/hello:1.0", PullNew, "")
		if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "--insecure-options=http") {
			t.Fatalf("error %v, want discovery to fail and hint at http", err)
		}
		if _, err := fx.fetcher(insecure.HTTP, false, true).Fetch(ctx, "example.com/hello:1.0", PullNew, ""); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unknown CA needs the option", func(t *testing.T) {
		srv := newServer(t, true, false)
		publish(t, srv, key, "example.com/hello", "1.0")
		fx := newFixture(t, srv)
		fx.trust("example.com", key)
		_, err := fx.fetcher(0, false, false).Fetch(ctx, "example.com/hello:1.0", PullNew, "")
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("error %v, want a certificate error", err)
		}
		if _, err := fx.fetcher(insecure.TLS, false, false).Fetch(ctx, "example.com/hello:1.0", PullNew, ""); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("explicit http URL", func(t *testing.T) {
		srv := newServer(t, false, true)
		aci := testACI(t, "example.com/plain", nil)
		srv.put("/plain.aci", aci)
		srv.put("/plain.aci.asc", signBytes(t, key, aci))
		fx := newFixture(t, srv)
		fx.trust("example.com", key)
		if _, err := fx.fetcher(0, false, true).Fetch(ctx, "http://example.com/plain.aci", PullNew, ""); err != nil {
			t.Fatal(err)
		}
	})
}

func TestAuth(t *testing.T) {
	srv := newServer(t, true, false)
	key := newSigningKey(t, "k")
	aci := testACI(t, "example.com/private", nil)
	srv.put("/p.aci", aci)
	srv.put("/p.aci.asc", signBytes(t, key, aci))
	srv.auth = "Bearer s3cret"
	fx := newFixture(t, srv)
	fx.trust("example.com", key)
	ctx := context.Background()
	_, err := fx.fetcher(0, false, true).Fetch(ctx, "https://example.com/p.aci", PullNew, "")
	if !errors.Is(err, errdefs.ErrUntrusted) || !strings.Contains(err.Error(), "401") {
		t.Fatalf("error %v, want 401", err)
	}
	writeAuth(t, filepath.Join(fx.local, "auth.d", "example.json"), `{"rktKind":"auth","rktVersion":"v1","domains":["example.com"],"type":"oauth","credentials":{"token":"s3cret"}}`)
	if _, err := fx.fetcher(0, false, true).Fetch(ctx, "https://example.com/p.aci", PullNew, ""); err != nil {
		t.Fatal(err)
	}
}

func writeAuth(t testing.TB, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTrustOnFirstUse(t *testing.T) {
	srv := newServer(t, true, false)
	key := newSigningKey(t, "publisher")
	publish(t, srv, key, "example.com/hello", "1.0")
	srv.put("/keys/example.com.asc", armoredPublic(t, key))
	fx := newFixture(t, srv)
	ctx := context.Background()
	if _, err := fx.fetcher(0, false, true).Fetch(ctx, "example.com/hello:1.0", PullNew, ""); !errors.Is(err, errdefs.ErrUntrusted) {
		t.Fatalf("without --trust-keys-from-https: %v", err)
	}
	// Over TLS that is not verified, keys are not trusted on first use.
	if _, err := fx.fetcher(insecure.TLS, true, false).Fetch(ctx, "example.com/hello:1.0", PullNew, ""); !errors.Is(err, errdefs.ErrUntrusted) {
		t.Fatalf("TOFU over unverified TLS: %v", err)
	}
	if _, err := fx.fetcher(0, true, true).Fetch(ctx, "example.com/hello:1.0", PullNew, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(fx.local, "trustedkeys", "prefix.d", "example.com", "hello")); err != nil {
		t.Fatalf("key not stored for the prefix: %v", err)
	}
}

func TestTrustDiscovery(t *testing.T) {
	srv := newServer(t, true, false)
	key := newSigningKey(t, "publisher")
	srv.discovery("example.com/hello", "example.com/hello", "", "https://example.com/keys/hello.asc")
	srv.put("/keys/hello.asc", armoredPublic(t, key))
	fx := newFixture(t, srv)
	f := fx.fetcher(0, false, true)
	var seen []KeyCandidate
	got, err := f.Trust(context.Background(), TrustRequest{Prefix: "example.com/hello"}, func(c KeyCandidate) (bool, error) {
		seen = append(seen, c)
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1 || seen[0].Location != "https://example.com/keys/hello.asc" || len(got) != 1 {
		t.Fatalf("reviewed %+v, stored %+v", seen, got)
	}
	// A declined key is not stored.
	fx2 := newFixture(t, srv)
	got, err = fx2.fetcher(0, false, true).Trust(context.Background(), TrustRequest{Prefix: "example.com/hello"}, func(KeyCandidate) (bool, error) { return false, nil })
	if err != nil || len(got) != 0 {
		t.Fatalf("declined: %v, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(fx2.local, "trustedkeys")); !os.IsNotExist(err) {
		t.Fatalf("declined key stored: %v", err)
	}
	// Keys over plain HTTP need --insecure-allow-http.
	_, err = f.Trust(context.Background(), TrustRequest{Prefix: "example.com/x", Locations: []string{"http://example.com/keys/hello.asc"}}, func(KeyCandidate) (bool, error) { return true, nil })
	if !errors.Is(err, errdefs.ErrUntrusted) {
		t.Fatalf("http key: %v", err)
	}
	// A discovery page cannot make orbit read local files as keys.
	srv.discovery("example.com/local", "example.com/local", "", "/etc/passwd")
	if _, err := f.Trust(context.Background(), TrustRequest{Prefix: "example.com/local"}, func(KeyCandidate) (bool, error) { return true, nil }); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("discovered local path: %v", err)
	}
	// --root needs a key.
	if _, err := f.Trust(context.Background(), TrustRequest{Root: true}, nil); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("root without key: %v", err)
	}
}

func TestLocalFileSignatureBeside(t *testing.T) {
	key := newSigningKey(t, "k")
	fx := newFixture(t, &server{})
	fx.trust("example.com", key)
	aci := testACI(t, "example.com/local", nil)
	p := filepath.Join(t.TempDir(), "local.aci")
	os.WriteFile(p, aci, 0o644)
	f := fx.fetcher(0, false, false)
	if _, err := f.Fetch(context.Background(), p, PullNew, ""); !errors.Is(err, errdefs.ErrUntrusted) {
		t.Fatalf("unsigned file: %v", err)
	}
	os.WriteFile(p+".asc", signBytes(t, key, aci), 0o644)
	if _, err := f.Fetch(context.Background(), p, PullNew, ""); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "sig")
	os.WriteFile(other, signBytes(t, key, aci), 0o644)
	if _, err := f.Fetch(context.Background(), p, PullNew, other); err != nil {
		t.Fatalf("--signature: %v", err)
	}
	if _, err := f.Fetch(context.Background(), p, PullNew, other+"-missing"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing --signature: %v", err)
	}
	if _, err := f.Fetch(context.Background(), "./no-such.aci", PullNew, ""); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing file: %v", err)
	}
}
