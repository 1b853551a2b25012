// Package verify is orbit's trust store: the OpenPGP public keys a user
// trusts to sign images, kept in rkt's layout, and the check of an image's
// detached signature against them.
package verify

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// MaxKeySize and MaxSignatureSize bound what is read from a key or
// signature file: both are small, and they come from untrusted servers.
const (
	MaxKeySize       = 1 << 20
	MaxSignatureSize = 1 << 20
)

// ReadKeys parses one or more OpenPGP public keys, armored or binary.
// Private key material, if any, is dropped when the keys are stored.
func ReadKeys(data []byte) (openpgp.EntityList, error) {
	if len(data) > MaxKeySize {
		return nil, fmt.Errorf("key file is larger than %d bytes: %w", MaxKeySize, errdefs.ErrInvalid)
	}
	var (
		el  openpgp.EntityList
		err error
	)
	if isArmored(data) {
		el, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("reading OpenPGP key: %w: %w", err, errdefs.ErrInvalid)
	}
	if len(el) == 0 {
		return nil, fmt.Errorf("no OpenPGP public key found: %w", errdefs.ErrInvalid)
	}
	return el, nil
}

func isArmored(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("-----BEGIN PGP"))
}

// Fingerprint is the key's fingerprint in lowercase hex, the name of its
// file in the trust store.
func Fingerprint(e *openpgp.Entity) string {
	return hex.EncodeToString(e.PrimaryKey.Fingerprint)
}

// FormatFingerprint groups an uppercase fingerprint in blocks of four, as
// gpg prints it, so a user can compare it with what the publisher shows.
func FormatFingerprint(fp string) string {
	fp = strings.ToUpper(fp)
	var b strings.Builder
	for i := 0; i < len(fp); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		end := min(i+4, len(fp))
		b.WriteString(fp[i:end])
	}
	return b.String()
}

// Identities lists the user IDs of a key, primary first.
func Identities(e *openpgp.Entity) []string {
	var out []string
	primary := e.PrimaryIdentity()
	if primary != nil {
		out = append(out, primary.Name)
	}
	for name, id := range e.Identities {
		if id != primary {
			out = append(out, name)
		}
	}
	return out
}

// KeyStatus tells whether a key can sign images now: "" when it can, or why
// it cannot ("revoked", "expired on ...").
func KeyStatus(e *openpgp.Entity, now time.Time) string {
	if e.Revoked(now) {
		return "revoked"
	}
	sig, _ := e.PrimarySelfSignature()
	if sig != nil && e.PrimaryKey.KeyExpired(sig, now) {
		if sig.KeyLifetimeSecs != nil {
			exp := e.PrimaryKey.CreationTime.Add(time.Duration(*sig.KeyLifetimeSecs) * time.Second)
			return "expired on " + exp.UTC().Format(time.RFC3339)
		}
		return "expired"
	}
	return ""
}

// armorKey serializes the public part of e, armored, as stored on disk.
func armorKey(e *openpgp.Entity) ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := e.Serialize(w); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// readSignature parses a detached signature, armored or binary, and
// returns its first signature packet (to name the signing key in errors)
// together with the binary form to check.
func readSignature(r io.Reader) (*packet.Signature, []byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSignatureSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading signature: %w", err)
	}
	if len(data) > MaxSignatureSize {
		return nil, nil, fmt.Errorf("signature is larger than %d bytes: %w", MaxSignatureSize, errdefs.ErrInvalid)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, nil, fmt.Errorf("signature is empty: %w", errdefs.ErrInvalid)
	}
	if isArmored(data) {
		block, err := armor.Decode(bytes.NewReader(data))
		if err != nil {
			return nil, nil, fmt.Errorf("reading armored signature: %w: %w", err, errdefs.ErrInvalid)
		}
		if block.Type != openpgp.SignatureType {
			return nil, nil, fmt.Errorf("expected a %q block, got %q: %w", openpgp.SignatureType, block.Type, errdefs.ErrInvalid)
		}
		data, err = io.ReadAll(io.LimitReader(block.Body, MaxSignatureSize+1))
		if err != nil {
			return nil, nil, fmt.Errorf("reading armored signature: %w: %w", err, errdefs.ErrInvalid)
		}
	}
	p, err := packet.NewReader(bytes.NewReader(data)).Next()
	if err != nil {
		return nil, nil, fmt.Errorf("reading signature: %w: %w", err, errdefs.ErrInvalid)
	}
	sig, ok := p.(*packet.Signature)
	if !ok {
		return nil, nil, fmt.Errorf("not an OpenPGP signature: %w", errdefs.ErrInvalid)
	}
	return sig, data, nil
}

// issuer names the key that made sig: its fingerprint when the signature
// carries one (gpg always adds it), else its 64-bit key ID.
func issuer(sig *packet.Signature) string {
	if len(sig.IssuerFingerprint) > 0 {
		return hex.EncodeToString(sig.IssuerFingerprint)
	}
	if sig.IssuerKeyId != nil {
		return fmt.Sprintf("%016x", *sig.IssuerKeyId)
	}
	return "(unknown key)"
}
