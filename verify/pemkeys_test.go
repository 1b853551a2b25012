package verify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func TestPublicKeys(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	data := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if !IsPEMPublicKey(data) {
		t.Fatal("PEM key not recognised")
	}
	pub, err := ReadPublicKeyPEM(data)
	if err != nil {
		t.Fatal(err)
	}
	local, system := t.TempDir(), t.TempDir()
	k := NewKeystore(local, system)
	p, err := k.AddPublicKey("reg.example/team", pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	if want := filepath.Join(local, "trustedkeys", "prefix.d", "reg.example", "team", PublicKeyFingerprint(pub)+".pem"); p != want || PublicKeyFingerprint(pub) != hexString(sum[:]) {
		t.Fatalf("stored at %s, want %s", p, want)
	}
	payload := []byte(`{"critical":{}}`)
	h := sha256.Sum256(payload)
	sig, _ := ecdsa.SignASN1(rand.Reader, key, h[:])
	b64 := base64.StdEncoding.EncodeToString(sig)
	signer, err := k.VerifyECDSA(types.ACIdentifier("reg.example/team/app"), payload, b64)
	if err != nil || signer.Fingerprint != PublicKeyFingerprint(pub) {
		t.Fatalf("good signature: %v %+v", err, signer)
	}
	for name, c := range map[string]struct {
		img     string
		payload []byte
		sig     string
	}{
		"other prefix":    {"reg.example/other/app", payload, b64},
		"altered payload": {"reg.example/team/app", append(payload, ' '), b64},
		"not base64":      {"reg.example/team/app", payload, "!!"},
	} {
		if _, err := k.VerifyECDSA(types.ACIdentifier(c.img), c.payload, c.sig); !errors.Is(err, errdefs.ErrUntrusted) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// The PEM file is not mistaken for an OpenPGP key.
	if keys, err := k.Keyring(types.ACIdentifier("reg.example/team/app")); err != nil || len(keys) != 0 {
		t.Fatalf("OpenPGP keyring: %v %v", keys, err)
	}
	// An empty local file disables a system key.
	sysKS := NewKeystore(system, "")
	if _, err := sysKS.AddPublicKey("", pub); err != nil {
		t.Fatal(err)
	}
	os.Remove(p)
	k2 := NewKeystore(t.TempDir(), system)
	if keys, _ := k2.PublicKeys("any.example/x"); len(keys) != 1 {
		t.Fatalf("system root key not read: %v", keys)
	}
	os.MkdirAll(filepath.Join(k2.LocalDir, "root.d"), 0o755)
	os.WriteFile(filepath.Join(k2.LocalDir, "root.d", PublicKeyFingerprint(pub)+".pem"), nil, 0o644)
	if keys, _ := k2.PublicKeys("any.example/x"); len(keys) != 0 {
		t.Fatalf("masked system key still read: %v", keys)
	}
	if _, err := ReadPublicKeyPEM([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("garbage PEM: %v", err)
	}
}

func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}
