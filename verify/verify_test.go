package verify

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// newKey makes a fast EdDSA signing key created at created, expiring after
// lifetime (0: never).
func newKey(t testing.TB, name string, created time.Time, lifetime time.Duration) *openpgp.Entity {
	t.Helper()
	cfg := &packet.Config{
		Algorithm:       packet.PubKeyAlgoEdDSA,
		Time:            func() time.Time { return created },
		KeyLifetimeSecs: uint32(lifetime / time.Second),
	}
	e, err := openpgp.NewEntity(name, "test", name+"@example.com", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func sign(t testing.TB, e *openpgp.Entity, data []byte, armored bool, at time.Time) []byte {
	t.Helper()
	var buf bytes.Buffer
	cfg := &packet.Config{Time: func() time.Time { return at }}
	var err error
	if armored {
		err = openpgp.ArmoredDetachSign(&buf, e, bytes.NewReader(data), cfg)
	} else {
		err = openpgp.DetachSign(&buf, e, bytes.NewReader(data), cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func newStore(t testing.TB) *Keystore {
	t.Helper()
	dir := t.TempDir()
	return NewKeystore(filepath.Join(dir, "etc"), filepath.Join(dir, "usr-lib"))
}

func name(s string) types.ACIdentifier { return types.ACIdentifier(s) }

func TestLayout(t *testing.T) {
	ks := newStore(t)
	e := newKey(t, "publisher", time.Now(), 0)
	fp := Fingerprint(e)
	p, err := ks.AddPrefix("example.com/hello", e)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(ks.LocalDir, "prefix.d", "example.com", "hello", fp); p != want {
		t.Fatalf("stored at %s, want %s", p, want)
	}
	r, err := ks.AddRoot(e)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(ks.LocalDir, "root.d", fp); r != want {
		t.Fatalf("root key at %s, want %s", r, want)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "-----BEGIN PGP PUBLIC KEY BLOCK-----") {
		t.Fatalf("stored key is not an armored public key:\n%s", data)
	}
	if strings.Contains(string(data), "PRIVATE") {
		t.Fatal("private key material stored")
	}
	if len(fp) != 40 || strings.ToLower(fp) != fp {
		t.Fatalf("fingerprint %q is not 40 lowercase hex digits", fp)
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".*tmp*"))
	if len(leftovers) != 0 {
		t.Fatalf("temp files left behind: %v", leftovers)
	}
}

func TestParsePrefix(t *testing.T) {
	for _, ok := range []string{"example.com", "example.com/hello", "a-b.c_d~e/f"} {
		if _, err := ParsePrefix(ok); err != nil {
			t.Errorf("ParsePrefix(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "https://example.com/x", "../etc", "example.com/../x", "example.com//x", "/abs", "Example.com", "example.com/", "a/./b", "a b"} {
		_, err := ParsePrefix(bad)
		if !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("ParsePrefix(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestKeyringScope(t *testing.T) {
	ks := newStore(t)
	e := newKey(t, "hello", time.Now(), 0)
	if _, err := ks.AddPrefix("example.com/hello", e); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[string]int{
		"example.com/hello":       1,
		"example.com/hello/sub":   1,
		"example.com/hello2":      0,
		"example.com":             0,
		"other.org/example.com/h": 0,
	} {
		keys, err := ks.Keyring(name(n))
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != want {
			t.Errorf("%s: %d keys, want %d", n, len(keys), want)
		}
	}
	root := newKey(t, "root", time.Now(), 0)
	if _, err := ks.AddRoot(root); err != nil {
		t.Fatal(err)
	}
	keys, _ := ks.Keyring(name("anything.org/x"))
	if len(keys) != 1 || keys[0].Prefix != "" {
		t.Fatalf("root key not applied to every name: %+v", keys)
	}
}

func TestSystemKeysAndLocalMask(t *testing.T) {
	ks := newStore(t)
	e := newKey(t, "vendor", time.Now(), 0)
	system := &Keystore{LocalDir: ks.SystemDir}
	sp, err := system.AddPrefix("example.com", e)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := ks.Keyring(name("example.com/app"))
	if len(keys) != 1 || keys[0].Path != sp {
		t.Fatalf("system key not read: %+v", keys)
	}
	mask := filepath.Join(ks.LocalDir, "prefix.d", "example.com", Fingerprint(e))
	writeFile(t, mask, "")
	keys, _ = ks.Keyring(name("example.com/app"))
	if len(keys) != 0 {
		t.Fatalf("empty local file did not disable the system key: %+v", keys)
	}
}

func TestMisnamedKeyFileIgnored(t *testing.T) {
	ks := newStore(t)
	e := newKey(t, "a", time.Now(), 0)
	other := newKey(t, "b", time.Now(), 0)
	p, err := ks.AddPrefix("example.com", e)
	if err != nil {
		t.Fatal(err)
	}
	// A file named after one key but holding another is not trusted.
	if err := os.Rename(p, filepath.Join(filepath.Dir(p), Fingerprint(other))); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(filepath.Dir(p), "README"), "not a key")
	keys, err := ks.Keyring(name("example.com"))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 0 {
		t.Fatalf("misnamed key trusted: %+v", keys)
	}
}

func writeFile(t testing.TB, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerify(t *testing.T) {
	now := time.Now()
	image := []byte("pretend this is a compressed ACI")
	good := newKey(t, "good", now.Add(-time.Hour), 0)
	withSub := newKey(t, "sub", now.Add(-time.Hour), 0)
	if err := withSub.AddSigningSubkey(&packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: func() time.Time { return now.Add(-time.Hour) }}); err != nil {
		t.Fatal(err)
	}
	stranger := newKey(t, "stranger", now.Add(-time.Hour), 0)
	expiring := newKey(t, "expiring", now.Add(-3*time.Hour), time.Hour)
	revoked := newKey(t, "revoked", now.Add(-time.Hour), 0)
	revSig := sign(t, revoked, image, true, now.Add(-30*time.Minute))
	if err := revoked.RevokeKey(packet.KeyCompromised, "lost", &packet.Config{Time: func() time.Time { return now.Add(-10 * time.Minute) }}); err != nil {
		t.Fatal(err)
	}

	ks := newStore(t)
	ks.Now = func() time.Time { return now }
	for _, e := range []*openpgp.Entity{good, withSub, expiring, revoked} {
		if _, err := ks.AddPrefix("example.com/hello", e); err != nil {
			t.Fatal(err)
		}
	}
	tampered := append([]byte(nil), image...)
	tampered[0] ^= 1

	cases := []struct {
		what    string
		name    string
		data    []byte
		sig     []byte
		wantErr string // "" for success
		wantFP  string
	}{
		{"armored", "example.com/hello", image, sign(t, good, image, true, now), "", Fingerprint(good)},
		{"binary", "example.com/hello", image, sign(t, good, image, false, now), "", Fingerprint(good)},
		{"subkey", "example.com/hello/sub", image, sign(t, withSub, image, true, now), "", Fingerprint(withSub)},
		{"untrusted key", "example.com/hello", image, sign(t, stranger, image, true, now), "not trusted", Fingerprint(stranger)},
		{"no keys for name", "other.org/x", image, sign(t, good, image, true, now), "no key is trusted", Fingerprint(good)},
		{"tampered", "example.com/hello", tampered, sign(t, good, image, true, now), "altered", Fingerprint(good)},
		{"expired key", "example.com/hello", image, sign(t, expiring, image, true, now.Add(-150*time.Minute)), "expired", Fingerprint(expiring)},
		{"revoked key", "example.com/hello", image, revSig, "revoked", Fingerprint(revoked)},
		{"dot-dot name", "other.org/../example.com/hello", image, sign(t, good, image, true, now), "cannot be matched", ""},
		{"garbage signature", "example.com/hello", image, []byte("hello"), "signature", ""},
		{"empty signature", "example.com/hello", image, nil, "empty", ""},
		{"key instead of signature", "example.com/hello", image, mustArmor(t, good), "expected", ""},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			s, err := ks.Verify(name(c.name), bytes.NewReader(c.data), bytes.NewReader(c.sig))
			if c.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if s.Fingerprint != c.wantFP || s.Prefix != "example.com/hello" || len(s.Identities) == 0 {
					t.Fatalf("signer %+v, want key %s for prefix example.com/hello", s, c.wantFP)
				}
				return
			}
			if !errors.Is(err, errdefs.ErrUntrusted) {
				t.Fatalf("error %v, want ErrUntrusted", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, c.wantErr) || !strings.Contains(msg, c.name) {
				t.Fatalf("error %q does not name the image and say %q", msg, c.wantErr)
			}
			if c.wantFP != "" && !strings.Contains(msg, c.wantFP) && !strings.Contains(msg, c.wantFP[24:]) {
				t.Fatalf("error %q does not name key %s", msg, c.wantFP)
			}
			if strings.Contains(msg, "\n") {
				t.Fatalf("error spans lines: %q", msg)
			}
		})
	}
}

func mustArmor(t testing.TB, e *openpgp.Entity) []byte {
	t.Helper()
	b, err := armorKey(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadKeys(t *testing.T) {
	a := newKey(t, "a", time.Now(), 0)
	b := newKey(t, "b", time.Now(), 0)
	var bin bytes.Buffer
	a.Serialize(&bin)
	b.Serialize(&bin)
	el, err := ReadKeys(bin.Bytes())
	if err != nil || len(el) != 2 {
		t.Fatalf("binary keyring: %d keys, %v", len(el), err)
	}
	el, err = ReadKeys(mustArmor(t, a))
	if err != nil || len(el) != 1 || Fingerprint(el[0]) != Fingerprint(a) {
		t.Fatalf("armored key: %v", err)
	}
	for _, bad := range [][]byte{nil, []byte("junk"), bytes.Repeat([]byte{'x'}, MaxKeySize+1)} {
		if _, err := ReadKeys(bad); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("ReadKeys(%.10q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestFormatFingerprint(t *testing.T) {
	got := FormatFingerprint("8b86de38890ddb7291867b025210bd8888182190")
	if want := "8B86 DE38 890D DB72 9186 7B02 5210 BD88 8818 2190"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestKeyStatus(t *testing.T) {
	now := time.Now()
	e := newKey(t, "e", now.Add(-2*time.Hour), time.Hour)
	if s := KeyStatus(e, now); !strings.HasPrefix(s, "expired on ") {
		t.Fatalf("status %q, want expired", s)
	}
	if s := KeyStatus(e, now.Add(-90*time.Minute)); s != "" {
		t.Fatalf("status %q while valid", s)
	}
}
