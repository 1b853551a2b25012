package verify

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// MaxSignedPayload bounds the literal data of a signed message: a simple
// signing payload is a few hundred bytes of JSON.
const MaxSignedPayload = 64 << 10

// VerifyMessage checks an OpenPGP signed message (the "simple signing"
// form skopeo, podman and containers/image write: a binary message whose
// literal data is the signed JSON) against the keys trusted for name, and
// returns the literal data with the key that signed it. The data is
// returned only when the signature is good. Every failure wraps
// errdefs.ErrUntrusted.
func (k *Keystore) VerifyMessage(name types.ACIdentifier, message []byte) ([]byte, Signer, error) {
	if len(message) > MaxSignatureSize {
		return nil, Signer{}, fmt.Errorf("signature is larger than %d bytes: %w", MaxSignatureSize, errdefs.ErrUntrusted)
	}
	trusted, err := k.Keyring(name)
	if err != nil {
		return nil, Signer{}, fmt.Errorf("%w: %w", err, errdefs.ErrUntrusted)
	}
	keyring := make(openpgp.EntityList, 0, len(trusted))
	for _, t := range trusted {
		keyring = append(keyring, t.Entity)
	}
	howToTrust := fmt.Sprintf("trust the publisher's key with 'orbit trust --prefix %s KEY' after checking its fingerprint, or skip verification with --insecure-options=image", name)
	md, err := openpgp.ReadMessage(bytes.NewReader(message), keyring, nil, &packet.Config{Time: k.now})
	if err != nil {
		return nil, Signer{}, fmt.Errorf("signature is not an OpenPGP signed message (%v): %w", err, errdefs.ErrUntrusted)
	}
	if !md.IsSigned || md.IsEncrypted || md.LiteralData == nil {
		return nil, Signer{}, fmt.Errorf("signature is not an OpenPGP signed message: %w", errdefs.ErrUntrusted)
	}
	payload, err := io.ReadAll(io.LimitReader(md.UnverifiedBody, MaxSignedPayload+1))
	if err != nil && md.SignatureError == nil {
		return nil, Signer{}, fmt.Errorf("signature cannot be read (%v): %w", err, errdefs.ErrUntrusted)
	}
	if len(payload) > MaxSignedPayload {
		return nil, Signer{}, fmt.Errorf("signed payload is larger than %d bytes: %w", MaxSignedPayload, errdefs.ErrUntrusted)
	}
	by := fmt.Sprintf("%016x", md.SignedByKeyId)
	if md.SignedByFingerprint != nil {
		by = fmt.Sprintf("%x", md.SignedByFingerprint)
	}
	if md.SignedBy == nil {
		if len(trusted) == 0 {
			return nil, Signer{}, fmt.Errorf("signed by key %s, but no key is trusted for %s: %s: %w", by, name, howToTrust, errdefs.ErrUntrusted)
		}
		return nil, Signer{}, fmt.Errorf("signed by key %s, which is not trusted for %s: %s: %w", by, name, howToTrust, errdefs.ErrUntrusted)
	}
	entity := md.SignedBy.Entity
	by = Fingerprint(entity)
	switch err := md.SignatureError; {
	case err == nil:
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		return nil, Signer{}, fmt.Errorf("signed by key %s, which has been revoked: %w", by, errdefs.ErrUntrusted)
	case errors.Is(err, pgperrors.ErrKeyExpired):
		return nil, Signer{}, fmt.Errorf("signed by key %s, which has expired: %w", by, errdefs.ErrUntrusted)
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		return nil, Signer{}, fmt.Errorf("the signature by key %s has expired: %w", by, errdefs.ErrUntrusted)
	default:
		return nil, Signer{}, fmt.Errorf("the signature by key %s is bad (%v): the image's signature has been altered: %w", by, err, errdefs.ErrUntrusted)
	}
	if md.Signature == nil {
		return nil, Signer{}, fmt.Errorf("the message signed by key %s carries no signature: %w", by, errdefs.ErrUntrusted)
	}
	for _, t := range trusted {
		if t.Entity == entity {
			return payload, Signer{Fingerprint: t.Fingerprint, Identities: Identities(entity), Prefix: t.Prefix, Path: t.Path}, nil
		}
	}
	return payload, Signer{Fingerprint: Fingerprint(entity), Identities: Identities(entity)}, nil
}
