package fetch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/insecure"
	"github.com/orbit-containers/orbit/verify"
)

// serveAs serves, signed, an image with the given labels at the path
// discovery gives for name:version.
func serveAs(t *testing.T, srv *server, key *openpgp.Entity, name, version string, labels map[string]string) string {
	t.Helper()
	goos, goarch := appcOSArch()
	aci := testACI(t, name, labels)
	p := "/images/" + name + "-" + version + "-" + goos + "-" + goarch + ".aci"
	srv.put(p, aci)
	srv.put(p+".asc", signBytes(t, key, aci))
	host, path, _ := strings.Cut(name, "/")
	srv.discovery(host+"/"+path, name, tpl, "")
	return p
}

func TestFetchByNameChecksLabels(t *testing.T) {
	srv := newServer(t, true, false)
	key := newSigningKey(t, "publisher")
	goos, goarch := appcOSArch()
	fx := newFixture(t, srv)
	fx.trust("example.com", key)
	f := fx.fetcher(0, false, true)
	ctx := context.Background()

	// A correctly signed 1.1 served where 1.2 was asked for.
	serveAs(t, srv, key, "example.com/app", "1.2", map[string]string{"version": "1.1", "os": goos, "arch": goarch})
	_, err := f.Fetch(ctx, "example.com/app:1.2", PullNew, "")
	if !errors.Is(err, errdefs.ErrUntrusted) || !strings.Contains(err.Error(), "version=1.1, not version=1.2") {
		t.Fatalf("error %v, want the version mismatch", err)
	}
	// Another arch than this machine's, asked for by default.
	otherArch := "aarch64"
	if goarch == otherArch {
		otherArch = "amd64"
	}
	serveAs(t, srv, key, "example.com/arch", "1.0", map[string]string{"version": "1.0", "os": goos, "arch": otherArch})
	_, err = f.Fetch(ctx, "example.com/arch:1.0", PullNew, "")
	if !errors.Is(err, errdefs.ErrUntrusted) || !strings.Contains(err.Error(), "arch="+otherArch+", not arch="+goarch) {
		t.Fatalf("error %v, want the arch mismatch", err)
	}
	// A label asked for that the image lacks.
	serveAs(t, srv, key, "example.com/bare", "1.0", map[string]string{"version": "1.0", "os": goos, "arch": goarch})
	_, err = f.Fetch(ctx, "example.com/bare:1.0,channel=stable", PullNew, "")
	if !errors.Is(err, errdefs.ErrUntrusted) || !strings.Contains(err.Error(), "no channel label") {
		t.Fatalf("error %v, want the missing label", err)
	}
	if n := fx.images(); n != 0 {
		t.Fatalf("%d refused images stored", n)
	}
	// version=latest (or none) takes whatever version is served.
	serveAs(t, srv, key, "example.com/new", "latest", map[string]string{"version": "3.1", "os": goos, "arch": goarch})
	for _, ref := range []string{"example.com/new", "example.com/new:latest"} {
		if _, err := f.Fetch(ctx, ref, PullUpdate, ""); err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
	}
}

// A URL's cached image is reused for a name only when it is what the name
// asks for now.
func TestCachedURLMustMatchLabels(t *testing.T) {
	srv := newServer(t, true, false)
	key := newSigningKey(t, "publisher")
	goos, goarch := appcOSArch()
	aci := testACI(t, "example.com/app", map[string]string{"version": "1.1", "os": goos, "arch": goarch})
	srv.putCached("/app.aci", aci, `"e"`, 3600)
	srv.put("/app.aci.asc", signBytes(t, key, aci))
	srv.discovery("example.com/app", "example.com/app", "https://example.com/app.{ext}", "")
	fx := newFixture(t, srv)
	fx.trust("example.com", key)
	f := fx.fetcher(0, false, true)
	ctx := context.Background()
	if _, err := f.Fetch(ctx, "example.com/app", PullNew, ""); err != nil {
		t.Fatal(err)
	}
	_, err := f.Fetch(ctx, "example.com/app:1.2", PullNew, "")
	if !errors.Is(err, errdefs.ErrUntrusted) || !strings.Contains(err.Error(), "version=1.1, not version=1.2") {
		t.Fatalf("error %v, want the cached 1.1 refused for 1.2", err)
	}
}

func TestUnverifiedImageNotReused(t *testing.T) {
	srv := newServer(t, true, false)
	key := newSigningKey(t, "publisher")
	goos, goarch := appcOSArch()
	aci := testACI(t, "example.com/app", map[string]string{"version": "1.0", "os": goos, "arch": goarch})
	srv.put("/app.aci", aci)
	fx := newFixture(t, srv)
	fx.trust("example.com", key)
	ctx := context.Background()
	lax := fx.fetcher(insecure.Image, false, true)
	strict := fx.fetcher(0, false, true)

	id, err := lax.Fetch(ctx, "https://example.com/app.aci", PullNew, "")
	if err != nil {
		t.Fatal(err)
	}
	if img, _ := fx.store.Get(id); img.Verified() {
		t.Fatalf("an unverified fetch recorded signer %q", img.Signer)
	}
	for _, ref := range []string{"https://example.com/app.aci", "example.com/app:1.0"} {
		for _, policy := range []PullPolicy{PullNew, PullNever} {
			_, err := strict.Fetch(ctx, ref, policy, "")
			if !errors.Is(err, errdefs.ErrUntrusted) || !strings.Contains(err.Error(), "without signature verification") {
				t.Fatalf("%s (%s): %v, want the unverified image refused", ref, policy, err)
			}
		}
		if got, err := lax.Fetch(ctx, ref, PullNew, ""); err != nil || got != id {
			t.Fatalf("%s with --insecure-options=image: %s, %v", ref, got, err)
		}
	}
	// An image ID pins the content: it is used as it is.
	if got, err := strict.Fetch(ctx, id, PullNew, ""); err != nil || got != id {
		t.Fatalf("by ID: %s, %v", got, err)
	}
	// Fetched again with a signature: the record is upgraded.
	srv.put("/app.aci.asc", signBytes(t, key, aci))
	if got, err := strict.Fetch(ctx, "https://example.com/app.aci", PullUpdate, ""); err != nil || got != id {
		t.Fatalf("update with a signature: %s, %v", got, err)
	}
	img, err := fx.store.Get(id)
	if err != nil || img.Signer != verify.Fingerprint(key) {
		t.Fatalf("signer %q after verification, want %s (%v)", img.Signer, verify.Fingerprint(key), err)
	}
	for _, ref := range []string{"https://example.com/app.aci", "example.com/app:1.0"} {
		if got, err := strict.Fetch(ctx, ref, PullNever, ""); err != nil || got != id {
			t.Fatalf("%s after verification: %s, %v", ref, got, err)
		}
	}
	// Fetched unverified once more, it keeps its signer.
	if _, err := lax.Fetch(ctx, "https://example.com/app.aci", PullUpdate, ""); err != nil {
		t.Fatal(err)
	}
	if img, _ := fx.store.Get(id); !img.Verified() {
		t.Fatal("an unverified fetch downgraded a verified image")
	}
}

// An image is not used with a dependency that was admitted unverified:
// not when it is fetched, nor when it is found in the store.
func TestUnverifiedDependencyNotReused(t *testing.T) {
	srv := newServer(t, true, false)
	key := newSigningKey(t, "publisher")
	fx := newFixture(t, srv)
	fx.trust("example.com", key)
	ctx := context.Background()
	lax := fx.fetcher(insecure.Image, false, true)
	strict := fx.fetcher(0, false, true)
	refused := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, errdefs.ErrUntrusted) || !strings.Contains(err.Error(), "example.com/base") || !strings.Contains(err.Error(), "without signature verification") {
			t.Fatalf("%s: %v, want the unverified dependency refused", what, err)
		}
	}

	publish(t, srv, nil, "example.com/base", "latest")
	if _, err := lax.Fetch(ctx, "example.com/base", PullNew, ""); err != nil {
		t.Fatal(err)
	}
	publish(t, srv, key, "example.com/app", "1.0", "example.com/base")
	_, err := strict.Fetch(ctx, "example.com/app:1.0", PullNew, "")
	refused("fetching", err)

	// Both verified; then an unverified base, newer, from a file.
	publish(t, srv, key, "example.com/base", "latest")
	if _, err := strict.Fetch(ctx, "example.com/base", PullUpdate, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := strict.Fetch(ctx, "example.com/app:1.0", PullNew, ""); err != nil {
		t.Fatal(err)
	}
	goos, goarch := appcOSArch()
	other := filepath.Join(t.TempDir(), "base.aci")
	os.WriteFile(other, testACI(t, "example.com/base", map[string]string{"os": goos, "arch": goarch, "patched": "yes"}), 0o644)
	if _, err := lax.Fetch(ctx, other, PullNew, ""); err != nil {
		t.Fatal(err)
	}
	for _, policy := range []PullPolicy{PullNew, PullNever} {
		_, err := strict.Fetch(ctx, "example.com/app:1.0", policy, "")
		refused("from the store ("+policy.String()+")", err)
	}
	if _, err := lax.Fetch(ctx, "example.com/app:1.0", PullNever, ""); err != nil {
		t.Fatal(err)
	}
}

func TestDiscoveredLocationsMustBeURLs(t *testing.T) {
	srv := newServer(t, true, false)
	key := newSigningKey(t, "publisher")
	fx := newFixture(t, srv)
	fx.trust("example.com", key)
	f := fx.fetcher(0, false, true)
	ctx := context.Background()
	for _, template := range []string{"file:///etc/passwd", "/etc/passwd", "/etc/{name}.{ext}", "file:///dev/tty#{ext}"} {
		srv.discovery("example.com/app", "example.com/app", template, "")
		_, err := f.Fetch(ctx, "example.com/app:1.0", PullNew, "")
		if err == nil || !strings.Contains(err.Error(), "not an http(s) URL") {
			t.Fatalf("template %q: %v, want it refused", template, err)
		}
	}
	// The image URL checks out but the signature is a local path: refused
	// without opening it (a FIFO would block the open).
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, asc := range []string{fifo, "file://" + fifo, "ftp://example.com/x.asc", "https:///x.asc"} {
		done := make(chan error, 1)
		go func() {
			_, _, err := f.endpoint(endpoint{ACI: "https://example.com/app.aci", ASC: asc}, true)
			done <- err
		}()
		select {
		case err := <-done:
			if !errors.Is(err, errdefs.ErrUntrusted) {
				t.Fatalf("signature at %q: %v, want ErrUntrusted", asc, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("signature at %q was opened", asc)
		}
	}
	// readSignature itself reads files only for locations the user named.
	if _, err := f.readSignature(ctx, fifo, true, false); !errors.Is(err, errdefs.ErrUntrusted) {
		t.Fatalf("readSignature of a discovered path: %v", err)
	}
	sig := filepath.Join(t.TempDir(), "app.asc")
	os.WriteFile(sig, []byte("sig"), 0o644)
	if data, err := f.readSignature(ctx, sig, false, true); err != nil || string(data) != "sig" {
		t.Fatalf("readSignature of a file the user named: %q, %v", data, err)
	}
}
