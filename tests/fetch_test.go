package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// fetchWorld is a namespace with an HTTPS server on 443, a plain one on 80
// and 8000, a CA the orbit under test trusts through SSL_CERT_FILE, and an
// isolated orbit installation.
type fetchWorld struct {
	t   *testing.T
	net *fetchNet
	srv *fetchServer
	ca  *fetchCA
	e   *env
}

func newFetchWorld(t *testing.T) *fetchWorld {
	w := &fetchWorld{t: t, net: newFetchNet(t), srv: newFetchServer(), ca: newFetchCA(t), e: newEnv(t)}
	w.srv.serveTLS(t, w.net.listen("127.0.0.1:443"), w.ca)
	w.srv.servePlain(t, w.net.listen("127.0.0.1:80"))
	w.srv.servePlain(t, w.net.listen("127.0.0.1:8000"))
	w.e.ExtraEnv = append(w.e.ExtraEnv, "SSL_CERT_FILE="+w.ca.pemFile)
	return w
}

func (w *fetchWorld) run(args ...string) result { return w.net.run(w.e, "", args...) }
func (w *fetchWorld) mustRun(args ...string) result {
	w.t.Helper()
	return w.net.mustRun(w.e, "", args...)
}

// imagePath is where publish puts name:version.
func imagePath(name, version string) string {
	return "/images/" + name + "-" + version + "-linux-" + appcArch() + ".aci"
}

// publish serves name:version, signed with sig (nil: unsigned), behind
// discovery on https://<name>.
func (w *fetchWorld) publish(name, version string, aci, sig []byte) {
	p := imagePath(name, version)
	w.srv.put(p, aci)
	if sig != nil {
		w.srv.put(p+".asc", sig)
	}
	w.srv.publishDiscovery(name, name, "https://example.com/images/{name}-{version}-{os}-{arch}.{ext}", "https://example.com/keys/"+strings.ReplaceAll(name, "/", "_")+".asc")
}

// trustKey trusts key for prefix the way a user does, from a file.
func (w *fetchWorld) trustKey(prefix string, key []byte) {
	w.t.Helper()
	p := filepath.Join(w.t.TempDir(), "key.asc")
	writeFile(w.t, p, string(key))
	w.mustRun("trust", "--prefix", prefix, "--skip-fingerprint-review", p)
}

var fullID = regexp.MustCompile(`^sha512-[0-9a-f]{128}\n$`)

// oneErrorLine checks a refusal: exit 254, one "orbit: " line naming all of
// want.
func oneErrorLine(t *testing.T, r result, want ...string) {
	t.Helper()
	if r.Code != 254 || r.Stdout != "" {
		t.Fatalf("want a refusal, got %s", r)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(r.Stderr), "\n") {
		if strings.HasPrefix(l, "orbit: ") && !strings.HasPrefix(l, "orbit: warning") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("want one error line, got %q", r.Stderr)
	}
	for _, s := range want {
		if !strings.Contains(lines[0], s) {
			t.Fatalf("error %q does not mention %q", lines[0], s)
		}
	}
}

func TestFetchLocalAndPlainHTTPUnsigned(t *testing.T) {
	t.Parallel()
	w := newFetchWorld(t)
	aci := fetchACI(t, "example.com/skeleton", "1.0")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "out.aci"), string(aci))
	r := w.run("fetch", "--full", filepath.Join(dir, "out.aci"))
	oneErrorLine(t, r, "example.com/skeleton", "no signature", "--insecure-options=image")
	r = w.mustRun("fetch", "--full", "--insecure-options=image", filepath.Join(dir, "out.aci"))
	if !fullID.MatchString(r.Stdout) {
		t.Fatalf("fetch printed %q, want a full image ID", r.Stdout)
	}
	w.srv.put("/out.aci", aci)
	r2 := w.mustRun("fetch", "--full", "--insecure-options=image", "http://127.0.0.1:8000/out.aci")
	if r2.Stdout != r.Stdout {
		t.Fatalf("over HTTP: %q, want %q", r2.Stdout, r.Stdout)
	}
	// Without a terminal there is no progress output.
	if strings.Contains(r2.Stderr, "Downloading") {
		t.Fatalf("progress written to a non-terminal: %q", r2.Stderr)
	}
	w.srv.put("/unsigned.aci", fetchACI(t, "example.com/unsigned", "1.0"))
	oneErrorLine(t, w.run("fetch", "--full", "http://127.0.0.1:8000/unsigned.aci"), "example.com/unsigned", "no signature")
}

func TestFetchDiscoveryTrustedPrefix(t *testing.T) {
	t.Parallel()
	w := newFetchWorld(t)
	key := pgpKey(t, "Hello Publisher", time.Now().Add(-time.Hour), 0)
	aci := fetchACI(t, "example.com/hello", "1.0")
	w.publish("example.com/hello", "1.0", aci, pgpSign(t, key, aci, time.Now()))
	w.srv.put("/keys/example.com_hello.asc", pgpPublic(t, key))

	// Untrusted at first: refused, naming image, key and what to do.
	oneErrorLine(t, w.run("fetch", "--full", "example.com/hello:1.0"), "example.com/hello", pgpFingerprint(key), "orbit trust --prefix example.com/hello")

	// Trust through key discovery, confirming the fingerprint.
	r := w.net.run(w.e, "yes\n", "trust", "--prefix", "example.com/hello")
	if r.Code != 0 {
		t.Fatalf("trust: %s", r)
	}
	fp := pgpFingerprint(key)
	spaced := strings.ToUpper(fp[:4] + " " + fp[4:8])
	if !strings.Contains(r.Stderr, spaced) || !strings.Contains(r.Stderr, "(yes/no)") {
		t.Fatalf("trust did not show the fingerprint for review: %s", r)
	}
	stored := filepath.Join(w.e.LocalCfg, "trustedkeys", "prefix.d", "example.com", "hello", fp)
	if _, err := os.Stat(stored); err != nil {
		t.Fatalf("key not in rkt's layout: %v", err)
	}

	p := imagePath("example.com/hello", "1.0")
	refused := w.srv.hitCount(p)
	r = w.mustRun("fetch", "--full", "example.com/hello:1.0")
	if !fullID.MatchString(r.Stdout) {
		t.Fatalf("fetch printed %q", r.Stdout)
	}
	if n := w.srv.hitCount(p) - refused; n != 1 {
		t.Fatalf("image downloaded %d times", n)
	}
	// Cache hits: from the store, and from the server's ETag on update.
	for _, policy := range []string{"new", "update", "never"} {
		r2 := w.mustRun("fetch", "--full", "--pull-policy="+policy, "example.com/hello:1.0")
		if r2.Stdout != r.Stdout {
			t.Fatalf("--pull-policy=%s gave %q, want %q", policy, r2.Stdout, r.Stdout)
		}
	}
	if n := w.srv.hitCount(p) - refused; n != 1 {
		t.Fatalf("unchanged image downloaded again: %d downloads", n)
	}
}

func TestFetchRefusesBadImages(t *testing.T) {
	t.Parallel()
	w := newFetchWorld(t)
	now := time.Now()
	good := pgpKey(t, "Good", now.Add(-time.Hour), 0)
	stranger := pgpKey(t, "Stranger", now.Add(-time.Hour), 0)
	expiring := pgpKey(t, "Expiring", now.Add(-3*time.Hour), time.Hour)
	revoked := pgpKey(t, "Revoked", now.Add(-time.Hour), 0)

	aci := func(name string) []byte { return fetchACI(t, name, "1.0") }
	wrong := aci("example.com/wrong-key")
	w.publish("example.com/wrong-key", "1.0", wrong, pgpSign(t, stranger, wrong, now))
	tampered := aci("example.com/tampered")
	sig := pgpSign(t, good, tampered, now)
	tampered[len(tampered)-20] ^= 0xff
	w.publish("example.com/tampered", "1.0", tampered, sig)
	unsigned := aci("example.com/unsigned")
	w.publish("example.com/unsigned", "1.0", unsigned, nil)
	exp := aci("example.com/expired")
	w.publish("example.com/expired", "1.0", exp, pgpSign(t, expiring, exp, now.Add(-150*time.Minute)))
	rev := aci("example.com/revoked")
	w.publish("example.com/revoked", "1.0", rev, pgpSign(t, revoked, rev, now.Add(-30*time.Minute)))

	if err := revoked.RevokeKey(0, "compromised", nil); err != nil {
		t.Fatal(err)
	}
	for _, k := range [][]byte{pgpPublic(t, good), pgpPublic(t, expiring), pgpPublic(t, revoked)} {
		w.trustKey("example.com", k)
	}
	for _, c := range []struct {
		name string
		want []string
	}{
		{"example.com/wrong-key", []string{pgpFingerprint(stranger), "not trusted", "orbit trust"}},
		{"example.com/tampered", []string{pgpFingerprint(good), "altered"}},
		{"example.com/unsigned", []string{"no signature", ".aci.asc", "--insecure-options=image"}},
		{"example.com/expired", []string{pgpFingerprint(expiring), "expired"}},
		{"example.com/revoked", []string{pgpFingerprint(revoked), "revoked"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			oneErrorLine(t, w.run("fetch", "--full", c.name+":1.0"), append([]string{c.name}, c.want...)...)
			// Nothing of it entered the store.
			oneErrorLine(t, w.run("fetch", "--full", "--pull-policy=never", c.name+":1.0"), "not in the store")
		})
	}
	// --insecure-options=image takes an unsigned one.
	if r := w.mustRun("fetch", "--full", "--insecure-options=image", "example.com/unsigned:1.0"); !fullID.MatchString(r.Stdout) {
		t.Fatalf("insecure fetch printed %q", r.Stdout)
	}
}

func TestFetchGPGSignedRootKey(t *testing.T) {
	t.Parallel()
	w := newFetchWorld(t)
	g := newGPG(t)
	g.run(nil, "--quick-gen-key", "Real Publisher <real@other.org>", "rsa2048", "cert", "1y")
	fp := g.fingerprint("real@other.org")
	// Sign with a subkey, as many publishers do.
	g.run(nil, "--quick-add-key", fp, "ed25519", "sign", "1y")
	keyFile := filepath.Join(t.TempDir(), "pubkeys.gpg")
	writeFile(t, keyFile, string(g.run(nil, "--armor", "--export", "real@other.org")))

	aci := fetchACI(t, "other.org/tools/app", "2.1")
	dir := t.TempDir()
	img := filepath.Join(dir, "app.aci")
	writeFile(t, img, string(aci))
	g.run(nil, "--armor", "--output", img+".asc", "--detach-sign", img)
	binSig := g.run(nil, "--output", "-", "--detach-sign", img)

	oneErrorLine(t, w.run("fetch", "--full", img), "other.org/tools/app", "no key is trusted")
	r := w.mustRun("trust", "--root", "--skip-fingerprint-review", keyFile)
	if _, err := os.Stat(filepath.Join(w.e.LocalCfg, "trustedkeys", "root.d", fp)); err != nil {
		t.Fatalf("root key not stored: %v\n%s", err, r)
	}
	// A local file with its .aci.asc beside it.
	id := w.mustRun("fetch", "--full", img).Stdout
	if !fullID.MatchString(id) {
		t.Fatalf("fetch printed %q", id)
	}
	// An https URL with a binary signature given by URL.
	w.srv.put("/dl/app.aci", aci)
	w.srv.put("/sigs/app.sig", binSig)
	r = w.mustRun("fetch", "--full", "--signature", "https://example.com/sigs/app.sig", "https://example.com/dl/app.aci")
	if r.Stdout != id {
		t.Fatalf("URL fetch gave %q, want %q", r.Stdout, id)
	}
	// A signature for other bytes is refused.
	other := filepath.Join(dir, "other.sig")
	writeFile(t, other, string(g.run(nil, "--armor", "--output", "-", "--detach-sign", keyFile)))
	oneErrorLine(t, w.run("fetch", "--full", "--pull-policy=update", "--signature", other, img), "altered")
}

func TestFetchDependencyChainWithBadLink(t *testing.T) {
	t.Parallel()
	w := newFetchWorld(t)
	good := pgpKey(t, "Good", time.Now().Add(-time.Hour), 0)
	bad := pgpKey(t, "Bad", time.Now().Add(-time.Hour), 0)
	app := fetchACI(t, "example.com/app", "1.0", "example.com/mid")
	mid := fetchACI(t, "example.com/mid", "latest", "example.com/base")
	base := fetchACI(t, "example.com/base", "latest")
	w.publish("example.com/app", "1.0", app, pgpSign(t, good, app, time.Now()))
	w.publish("example.com/mid", "latest", mid, pgpSign(t, good, mid, time.Now()))
	w.publish("example.com/base", "latest", base, pgpSign(t, bad, base, time.Now()))
	w.trustKey("example.com", pgpPublic(t, good))

	oneErrorLine(t, w.run("fetch", "--full", "example.com/app:1.0"), "example.com/app", "example.com/base", pgpFingerprint(bad))
	for _, n := range []string{"example.com/app:1.0", "example.com/mid", "example.com/base"} {
		oneErrorLine(t, w.run("fetch", "--full", "--pull-policy=never", n), "not in the store")
	}
	w.publish("example.com/base", "latest", base, pgpSign(t, good, base, time.Now()))
	w.mustRun("fetch", "--full", "example.com/app:1.0")
	for _, n := range []string{"example.com/mid", "example.com/base"} {
		w.mustRun("fetch", "--full", "--pull-policy=never", n)
	}
}

func TestFetchTransportChecks(t *testing.T) {
	t.Parallel()
	w := newFetchWorld(t)
	key := pgpKey(t, "K", time.Now().Add(-time.Hour), 0)
	w.trustKey("other.org", pgpPublic(t, key))
	// other.org/plain is discoverable over plain HTTP only (the HTTPS
	// server has no page for it).
	aci := fetchACI(t, "other.org/plain", "1.0")
	w.srv.put("/plain/app.aci", aci)
	w.srv.put("/plain/app.aci.asc", pgpSign(t, key, aci, time.Now()))
	w.srv.mu.Lock()
	w.srv.pages["other.org/plain"] = `<meta name="ac-discovery" content="other.org/plain http://other.org/plain/app.{ext}">`
	w.srv.mu.Unlock()
	// Served on both ports, so HTTPS discovery would find it: make HTTPS
	// fail by withholding the CA, and check each option alone.
	noCA := *w.e
	noCA.ExtraEnv = nil
	r := w.net.run(&noCA, "", "fetch", "--full", "other.org/plain:1.0")
	oneErrorLine(t, r, "other.org/plain", "--insecure-options=http")
	if !strings.Contains(r.Stderr, "certificate") {
		t.Fatalf("the TLS failure is not explained: %s", r.Stderr)
	}
	// The page offers a plain HTTP image URL: refused without the option
	// even when HTTPS discovery works.
	oneErrorLine(t, w.run("fetch", "--full", "other.org/plain:1.0"), "plain HTTP")
	w.mustRun("fetch", "--full", "--insecure-options=http", "other.org/plain:1.0")

	// TLS: an HTTPS URL from an unknown CA fails, unless tls is allowed.
	signed := fetchACI(t, "other.org/tls", "1.0")
	w.srv.put("/tls.aci", signed)
	w.srv.put("/tls.aci.asc", pgpSign(t, key, signed, time.Now()))
	r = w.net.run(&noCA, "", "fetch", "--full", "https://example.com/tls.aci")
	oneErrorLine(t, r, "certificate", "--insecure-options=tls")
	w.net.mustRun(&noCA, "", "fetch", "--full", "--insecure-options=tls", "https://example.com/tls.aci")
}

func TestFetchAuthAndConfig(t *testing.T) {
	t.Parallel()
	w := newFetchWorld(t)
	key := pgpKey(t, "K", time.Now().Add(-time.Hour), 0)
	w.trustKey("example.com", pgpPublic(t, key))
	aci := fetchACI(t, "example.com/private", "1.0")
	w.srv.put("/private.aci", aci)
	w.srv.put("/private.aci.asc", pgpSign(t, key, aci, time.Now()))
	w.srv.mu.Lock()
	w.srv.auth = "Basic Zm9vOmJhcg==" // foo:bar
	w.srv.mu.Unlock()
	oneErrorLine(t, w.run("fetch", "--full", "https://example.com/private.aci"), "401", "auth.d")
	writeFile(t, filepath.Join(w.e.SystemCfg, "auth.d", "all.json"), `{"rktKind":"auth","rktVersion":"v1","domains":["example.com","other.org"],"type":"oauth","credentials":{"token":"system"}}`)
	writeFile(t, filepath.Join(w.e.LocalCfg, "auth.d", "example.json"), `{"rktKind":"auth","rktVersion":"v1","domains":["example.com"],"type":"basic","credentials":{"user":"foo","password":"bar"}}`)
	w.mustRun("fetch", "--full", "https://example.com/private.aci")

	var cfg struct {
		Stage0 []map[string]any `json:"stage0"`
	}
	out := w.mustRun("config").Stdout
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("config is not JSON: %v\n%s", err, out)
	}
	byDomain := map[string]string{}
	for _, e := range cfg.Stage0 {
		if e["rktKind"] == "auth" {
			ds := e["domains"].([]any)
			byDomain[ds[0].(string)] = e["type"].(string)
		}
	}
	if byDomain["example.com"] != "basic" || byDomain["other.org"] != "oauth" || len(byDomain) != 2 {
		t.Fatalf("merged auth %v from:\n%s", byDomain, out)
	}
}

// fetch prints rkt's short image ID unless --full, and the short ID names
// the image for later commands.
func TestFetchPrintsShortIDUnlessFull(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/short")
	short := strings.TrimSpace(e.mustRun("fetch", "--insecure-options=image", aci).Stdout)
	full := strings.TrimSpace(e.mustRun("fetch", "--full", "--insecure-options=image", aci).Stdout)
	if !regexp.MustCompile(`^sha512-[0-9a-f]{32}$`).MatchString(short) || !strings.HasPrefix(full, short) || len(full) != len("sha512-")+128 {
		t.Fatalf("short %q, full %q", short, full)
	}
	if got := strings.TrimSpace(e.mustRun("image", "cat-manifest", short).Stdout); !strings.Contains(got, "example.com/short") {
		t.Fatalf("the short ID does not name the image: %s", got)
	}
}
