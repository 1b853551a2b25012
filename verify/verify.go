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

// Signer is the trusted key that made a good signature.
type Signer struct {
	Fingerprint string   // the primary key's, lowercase hex
	Identities  []string // its user IDs
	Prefix      string   // the prefix it is trusted for; "" for a root key
	Path        string   // the trust store file it comes from
}

// Verify checks that signature is a good detached OpenPGP signature of the
// bytes of signed, made by a key trusted for name that is neither expired
// nor revoked. Every failure wraps errdefs.ErrUntrusted and says which
// image, which key and what to do.
func (k *Keystore) Verify(name types.ACIdentifier, signed io.Reader, signature io.Reader) (Signer, error) {
	sig, sigData, err := readSignature(signature)
	if err != nil {
		return Signer{}, fmt.Errorf("image %s: %w: %w", name, err, errdefs.ErrUntrusted)
	}
	by := issuer(sig)
	trusted, err := k.Keyring(name)
	if err != nil {
		return Signer{}, fmt.Errorf("%w: %w", err, errdefs.ErrUntrusted)
	}
	howToTrust := fmt.Sprintf("trust the publisher's key with 'orbit trust --prefix %s KEY' after checking its fingerprint, or skip verification with --insecure-options=image", name)
	if len(trusted) == 0 {
		return Signer{}, fmt.Errorf("image %s is signed by key %s, but no key is trusted for %s: %s: %w",
			name, by, name, howToTrust, errdefs.ErrUntrusted)
	}
	keyring := make(openpgp.EntityList, 0, len(trusted))
	for _, t := range trusted {
		keyring = append(keyring, t.Entity)
	}
	cfg := &packet.Config{Time: k.now}
	entity, err := openpgp.CheckDetachedSignature(keyring, signed, bytes.NewReader(sigData), cfg)
	if entity != nil {
		by = Fingerprint(entity)
	}
	switch {
	case err == nil:
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return Signer{}, fmt.Errorf("image %s is signed by key %s, which is not trusted for %s: %s: %w",
			name, by, name, howToTrust, errdefs.ErrUntrusted)
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		return Signer{}, fmt.Errorf("image %s is signed by key %s, which has been revoked: ask the publisher for an image signed with a current key: %w",
			name, by, errdefs.ErrUntrusted)
	case errors.Is(err, pgperrors.ErrKeyExpired):
		status := "expired"
		if entity != nil {
			if s := KeyStatus(entity, k.now()); s != "" {
				status = s
			}
		}
		return Signer{}, fmt.Errorf("image %s is signed by key %s, which has %s: ask the publisher for an image signed with a current key, or trust the key's renewed version with 'orbit trust': %w",
			name, by, status, errdefs.ErrUntrusted)
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		return Signer{}, fmt.Errorf("image %s: the signature by key %s has expired: ask the publisher for a fresh signature: %w",
			name, by, errdefs.ErrUntrusted)
	default:
		var se pgperrors.SignatureError
		var ue pgperrors.UnsupportedError
		var st pgperrors.StructuralError
		if errors.As(err, &se) || errors.As(err, &ue) || errors.As(err, &st) {
			return Signer{}, fmt.Errorf("image %s: the signature by key %s does not match the image (%v): the image or its signature has been altered: %w",
				name, by, err, errdefs.ErrUntrusted)
		}
		return Signer{}, fmt.Errorf("image %s: checking signature: %w", name, err)
	}
	for _, t := range trusted {
		if t.Entity == entity {
			return Signer{Fingerprint: t.Fingerprint, Identities: Identities(entity), Prefix: t.Prefix, Path: t.Path}, nil
		}
	}
	return Signer{Fingerprint: Fingerprint(entity), Identities: Identities(entity)}, nil
}
