package verify

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
)

// Public keys for key-pair (cosign) signatures of OCI images live beside
// the OpenPGP keys, in the same prefix.d and root.d directories, named by
// their fingerprint with a .pem suffix:
//
//	<config>/trustedkeys/prefix.d/<prefix>/<sha256 of the DER key>.pem
//
// The fingerprint is the hex SHA-256 of the key's DER SubjectPublicKeyInfo
// (what `openssl pkey -pubin -outform DER | sha256sum` prints). The file
// holds one PEM "PUBLIC KEY" block. As for OpenPGP keys, an empty local
// file disables the system key of the same name.
const pemSuffix = ".pem"

// IsPEMPublicKey tells whether data looks like a PEM public key rather
// than an OpenPGP key.
func IsPEMPublicKey(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("-----BEGIN PUBLIC KEY-----"))
}

// ReadPublicKeyPEM parses one PEM "PUBLIC KEY" block holding an ECDSA key
// (what `cosign generate-key-pair` writes to cosign.pub).
func ReadPublicKeyPEM(data []byte) (*ecdsa.PublicKey, error) {
	if len(data) > MaxKeySize {
		return nil, fmt.Errorf("key file is larger than %d bytes: %w", MaxKeySize, errdefs.ErrInvalid)
	}
	block, rest := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("no PEM PUBLIC KEY block: %w", errdefs.ErrInvalid)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("PEM key file holds more than one block: %w", errdefs.ErrInvalid)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("reading PEM public key: %w: %w", err, errdefs.ErrInvalid)
	}
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("PEM public key is a %T, want an ECDSA key: %w", pub, errdefs.ErrInvalid)
	}
	return k, nil
}

// PublicKeyFingerprint is the hex SHA-256 of the key's DER form, the name
// of its file in the trust store.
func PublicKeyFingerprint(k *ecdsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

func encodePublicKey(k *ecdsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// AddPublicKey trusts an ECDSA key for images named prefix or below it
// (every image when prefix is ""), and returns the file it was written to.
func (k *Keystore) AddPublicKey(prefix string, pub *ecdsa.PublicKey) (string, error) {
	if prefix != "" {
		p, err := ParsePrefix(prefix)
		if err != nil {
			return "", err
		}
		prefix = p
	}
	if k.LocalDir == "" {
		return "", fmt.Errorf("no local configuration directory to store keys in: %w", errdefs.ErrInvalid)
	}
	data, err := encodePublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("serializing public key: %w: %w", err, errdefs.ErrInvalid)
	}
	dir := filepath.Join(k.LocalDir, relDir(prefix))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating trust directory: %w", err)
	}
	dst := filepath.Join(dir, PublicKeyFingerprint(pub)+pemSuffix)
	if err := atomicfile.Write(dst, data, 0o644); err != nil {
		return "", fmt.Errorf("storing public key: %w", err)
	}
	return dst, nil
}

// TrustedPublicKey is one ECDSA key and where its trust comes from.
type TrustedPublicKey struct {
	Key         *ecdsa.PublicKey
	Fingerprint string
	Prefix      string
	Path        string
}

func isPEMName(s string) bool {
	return strings.HasSuffix(s, pemSuffix) && isLowerHex64(strings.TrimSuffix(s, pemSuffix))
}

func isLowerHex64(s string) bool { return len(s) == 64 && isFingerprint(s) }

// PublicKeys returns the ECDSA keys trusted for images named name: those
// of every prefix of name and the root keys.
func (k *Keystore) PublicKeys(name types.ACIdentifier) ([]TrustedPublicKey, error) {
	if _, err := ParsePrefix(name.String()); err != nil {
		return nil, fmt.Errorf("image name %q cannot be matched against trusted prefixes: %w", name, errdefs.ErrInvalid)
	}
	var keys []TrustedPublicKey
	for _, prefix := range append(prefixesOf(name.String()), "") {
		rel := relDir(prefix)
		local, err := listKeyFiles(k.LocalDir, rel, isPEMName)
		if err != nil {
			return nil, err
		}
		system, err := listKeyFiles(k.SystemDir, rel, isPEMName)
		if err != nil {
			return nil, err
		}
		load := func(base, file string) {
			p := filepath.Join(base, rel, file)
			data, err := os.ReadFile(p)
			if err != nil {
				k.warn("ignoring trusted key file", "path", p, "err", err)
				return
			}
			pub, err := ReadPublicKeyPEM(data)
			fp := strings.TrimSuffix(file, pemSuffix)
			if err == nil && PublicKeyFingerprint(pub) != fp {
				err = fmt.Errorf("holds key %s, not the key its name says", PublicKeyFingerprint(pub))
			}
			if err != nil {
				k.warn("ignoring trusted key file", "path", p, "err", err)
				return
			}
			keys = append(keys, TrustedPublicKey{Key: pub, Fingerprint: fp, Prefix: prefix, Path: p})
		}
		for f, size := range local {
			if size > 0 {
				load(k.LocalDir, f)
			}
		}
		for f := range system {
			if _, masked := local[f]; !masked {
				load(k.SystemDir, f)
			}
		}
	}
	return keys, nil
}

// VerifyECDSA checks a base64 ASN.1 ECDSA signature of the SHA-256 of
// payload (cosign's key-pair signature) against the keys trusted for name.
// Every failure wraps errdefs.ErrUntrusted.
func (k *Keystore) VerifyECDSA(name types.ACIdentifier, payload []byte, signature string) (Signer, error) {
	keys, err := k.PublicKeys(name)
	if err != nil {
		return Signer{}, fmt.Errorf("%w: %w", err, errdefs.ErrUntrusted)
	}
	if len(keys) == 0 {
		return Signer{}, fmt.Errorf("no public key is trusted for %s: trust the publisher's key with 'orbit trust --prefix %s cosign.pub', or skip verification with --insecure-options=image: %w", name, name, errdefs.ErrUntrusted)
	}
	sig, err := base64.StdEncoding.DecodeString(signature)
	if err != nil || len(sig) == 0 || len(sig) > 1024 {
		return Signer{}, fmt.Errorf("the signature is not base64 of an ECDSA signature: %w", errdefs.ErrUntrusted)
	}
	sum := sha256.Sum256(payload)
	for _, t := range keys {
		if ecdsa.VerifyASN1(t.Key, sum[:], sig) {
			return Signer{Fingerprint: t.Fingerprint, Prefix: t.Prefix, Path: t.Path}, nil
		}
	}
	return Signer{}, fmt.Errorf("the signature was not made by a public key trusted for %s (%d trusted), or the payload was altered: %w", name, len(keys), errdefs.ErrUntrusted)
}
