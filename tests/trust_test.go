package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTrustCommandLine(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	key := pgpKey(t, "Publisher", time.Now().Add(-time.Hour), 0)
	keyFile := filepath.Join(t.TempDir(), "key.asc")
	writeFile(t, keyFile, string(pgpPublic(t, key)))
	fp := pgpFingerprint(key)

	// Neither a prefix nor --root: refused, pointing at both.
	r := e.run("trust", keyFile)
	if r.Code == 0 || !strings.Contains(r.Stderr, "--prefix") || !strings.Contains(r.Stderr, "--root") {
		t.Fatalf("implicit root trust: %s", r)
	}
	if r := e.run("trust", "--root"); r.Code == 0 || !strings.Contains(r.Stderr, "--root needs") {
		t.Fatalf("--root without a key: %s", r)
	}
	if r := e.run("trust", "--prefix", "https://example.com/x", keyFile); r.Code == 0 || !strings.Contains(r.Stderr, "URL scheme") {
		t.Fatalf("prefix with a scheme: %s", r)
	}
	if r := e.run("trust", "--prefix", "example.com/../x", keyFile); r.Code == 0 {
		t.Fatalf("prefix escaping prefix.d: %s", r)
	}

	// Declining, or not answering, stores nothing.
	for _, answer := range []string{"no\n", ""} {
		r := e.runIn(strings.NewReader(answer), "trust", "--prefix", "example.com/hello", keyFile)
		if r.Code == 0 || !strings.Contains(r.Stderr, strings.ToUpper(fp[len(fp)-4:])) {
			t.Fatalf("answer %q: %s", answer, r)
		}
		if _, err := os.Stat(filepath.Join(e.LocalCfg, "trustedkeys", "prefix.d", "example.com", "hello", fp)); !os.IsNotExist(err) {
			t.Fatalf("answer %q stored the key: %v", answer, err)
		}
	}
	r = e.runIn(strings.NewReader("maybe\ny\n"), "trust", "--prefix", "example.com/hello", keyFile)
	if r.Code != 0 || !strings.Contains(r.Stderr, "Added key for prefix \"example.com/hello\"") {
		t.Fatalf("confirmed trust: %s", r)
	}
	data, err := os.ReadFile(filepath.Join(e.LocalCfg, "trustedkeys", "prefix.d", "example.com", "hello", fp))
	if err != nil || !strings.Contains(string(data), "BEGIN PGP PUBLIC KEY BLOCK") {
		t.Fatalf("stored key: %v\n%s", err, data)
	}

	// A binary key file works too.
	g := newGPG(t)
	g.run(nil, "--quick-gen-key", "Binary <bin@example.com>", "ed25519", "sign", "1y")
	bin := filepath.Join(t.TempDir(), "key.gpg")
	writeFile(t, bin, string(g.run(nil, "--export", "bin@example.com")))
	e.mustRun("trust", "--root", "--skip-fingerprint-review", bin)
	if _, err := os.Stat(filepath.Join(e.LocalCfg, "trustedkeys", "root.d", g.fingerprint("bin@example.com"))); err != nil {
		t.Fatalf("binary root key: %v", err)
	}

	// Not a key at all.
	junk := filepath.Join(t.TempDir(), "junk")
	writeFile(t, junk, "hello")
	if r := e.run("trust", "--root", "--skip-fingerprint-review", junk); r.Code == 0 || !strings.Contains(r.Stderr, "junk") {
		t.Fatalf("junk key: %s", r)
	}
}

func TestTrustDiscoveryOverHTTP(t *testing.T) {
	t.Parallel()
	w := newFetchWorld(t)
	key := pgpKey(t, "Plain", time.Now().Add(-time.Hour), 0)
	w.srv.put("/keys/plain.asc", pgpPublic(t, key))
	// Discovery answers on plain HTTP only for this prefix: HTTPS has the
	// page too, but its key URL is http://.
	w.srv.publishDiscovery("other.org/plain", "other.org/plain", "", "http://other.org/keys/plain.asc")
	r := w.run("trust", "--prefix", "other.org/plain", "--skip-fingerprint-review")
	if r.Code == 0 || !strings.Contains(r.Stderr, "--insecure-allow-http") {
		t.Fatalf("key over plain HTTP without the option: %s", r)
	}
	w.mustRun("trust", "--prefix", "other.org/plain", "--skip-fingerprint-review", "--insecure-allow-http")
	if _, err := os.Stat(filepath.Join(w.e.LocalCfg, "trustedkeys", "prefix.d", "other.org", "plain", pgpFingerprint(key))); err != nil {
		t.Fatal(err)
	}
	// A key given by https URL.
	other := pgpKey(t, "Other", time.Now().Add(-time.Hour), 0)
	w.srv.put("/keys/other.asc", pgpPublic(t, other))
	w.mustRun("trust", "--prefix", "example.com", "--skip-fingerprint-review", "https://example.com/keys/other.asc")
	if _, err := os.Stat(filepath.Join(w.e.LocalCfg, "trustedkeys", "prefix.d", "example.com", pgpFingerprint(other))); err != nil {
		t.Fatal(err)
	}
}

func TestTrustKeysFromHTTPSOnFirstUse(t *testing.T) {
	t.Parallel()
	w := newFetchWorld(t)
	key := pgpKey(t, "Tofu", time.Now().Add(-time.Hour), 0)
	aci := fetchACI(t, "example.com/tofu", "1.0")
	w.publish("example.com/tofu", "1.0", aci, pgpSign(t, key, aci, time.Now()))
	w.srv.put("/keys/example.com_tofu.asc", pgpPublic(t, key))
	oneErrorLine(t, w.run("fetch", "--full", "example.com/tofu:1.0"), "no key is trusted")
	r := w.mustRun("fetch", "--full", "--trust-keys-from-https", "example.com/tofu:1.0")
	if !fullID.MatchString(r.Stdout) || !strings.Contains(r.Stderr, "trusting key on first use") {
		t.Fatalf("TOFU fetch: %s", r)
	}
	if _, err := os.Stat(filepath.Join(w.e.LocalCfg, "trustedkeys", "prefix.d", "example.com", "tofu", pgpFingerprint(key))); err != nil {
		t.Fatal(err)
	}
}
