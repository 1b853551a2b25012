package fetch

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/appc/spec/discovery"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/insecure"
	"github.com/orbit-containers/orbit/verify"
)

// KeyCandidate is one key offered for trust, with where it came from.
type KeyCandidate struct {
	Location string // the file or URL it was read from
	Entity   *openpgp.Entity
	// PublicKey is set instead of Entity for a PEM public key, the kind
	// cosign key-pair signatures of OCI images are checked with.
	PublicKey *ecdsa.PublicKey
}

// TrustRequest is what `orbit trust` asks for.
type TrustRequest struct {
	Prefix    string   // the name prefix; "" with Root
	Root      bool     // trust for every image
	Locations []string // key files or URLs; discovered from Prefix when empty
	AllowHTTP bool     // plain HTTP for discovery and key download
}

// Trusted is a key that was stored.
type Trusted struct {
	KeyCandidate
	Path string
}

// Trust reads the keys a request names (or discovers them for its
// prefix), asks confirm about each one, and stores those it accepts.
// confirm returning false skips a key; an error stops.
func (f *Fetcher) Trust(ctx context.Context, req TrustRequest, confirm func(KeyCandidate) (bool, error)) ([]Trusted, error) {
	if req.Root == (req.Prefix != "") {
		return nil, fmt.Errorf("give either a prefix or --root: %w", errdefs.ErrInvalid)
	}
	req.Prefix = TrustPrefix(req.Prefix)
	if req.Prefix != "" {
		if _, err := verify.ParsePrefix(req.Prefix); err != nil {
			return nil, err
		}
	}
	locations := req.Locations
	if len(locations) == 0 {
		if req.Root {
			return nil, fmt.Errorf("--root needs the key file or URL to trust (root keys are never discovered): %w", errdefs.ErrInvalid)
		}
		d, err := f.discoverKeys(ctx, req.Prefix, req.AllowHTTP)
		if err != nil {
			return nil, err
		}
		// A discovery page names URLs, never files on this machine.
		for _, loc := range d.Keys {
			if u, err := url.Parse(loc); err != nil || (u.Scheme != "https" && u.Scheme != "http") {
				return nil, fmt.Errorf("discovery page %s offers key %q, which is not an http(s) URL: %w", d.Page, loc, errdefs.ErrInvalid)
			}
		}
		locations = d.Keys
	}
	var candidates []KeyCandidate
	for _, loc := range locations {
		data, err := f.readKeyData(ctx, loc, req.AllowHTTP)
		if err != nil {
			return nil, err
		}
		if verify.IsPEMPublicKey(data) {
			pub, err := verify.ReadPublicKeyPEM(data)
			if err != nil {
				return nil, fmt.Errorf("key %s: %w", loc, err)
			}
			candidates = append(candidates, KeyCandidate{Location: loc, PublicKey: pub})
			continue
		}
		el, err := verify.ReadKeys(data)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", loc, err)
		}
		for _, e := range el {
			candidates = append(candidates, KeyCandidate{Location: loc, Entity: e})
		}
	}
	var out []Trusted
	for _, c := range candidates {
		ok, err := confirm(c)
		if err != nil {
			return out, err
		}
		if !ok {
			continue
		}
		var p string
		if c.PublicKey != nil {
			p, err = f.keystore.AddPublicKey(req.Prefix, c.PublicKey)
		} else if req.Root {
			p, err = f.keystore.AddRoot(c.Entity)
		} else {
			p, err = f.keystore.AddPrefix(req.Prefix, c.Entity)
		}
		if err != nil {
			return out, err
		}
		out = append(out, Trusted{KeyCandidate: c, Path: p})
	}
	return out, nil
}

// discoverKeys finds the ac-discovery-pubkeys of a prefix.
func (f *Fetcher) discoverKeys(ctx context.Context, prefix string, allowHTTP bool) (*discovered, error) {
	app, err := discovery.NewApp(prefix, nil)
	if err != nil {
		return nil, fmt.Errorf("prefix %q: %w: %w", prefix, err, errdefs.ErrInvalid)
	}
	d, err := f.discover(ctx, app, allowHTTP, func(d *discovered) bool { return len(d.Keys) > 0 })
	if err != nil {
		return nil, fmt.Errorf("discovering keys for %s: %w", prefix, err)
	}
	return d, nil
}

// TrustPrefix is the trust-store prefix of what a user gives --prefix: an
// OCI image's registry name (127.0.0.1:5000/demo/app, with or without
// docker://) becomes the name its images are stored under
// (127.0.0.1_5000/demo/app); an appc prefix is unchanged.
func TrustPrefix(prefix string) string {
	p := strings.TrimPrefix(prefix, "docker://")
	if strings.Contains(p, "://") {
		return prefix // refused as a URL by ParsePrefix
	}
	if p != prefix || strings.Contains(p, ":") {
		if s, err := types.SanitizeACIdentifier(p); err == nil {
			return s
		}
	}
	return prefix
}

// readKeys reads OpenPGP keys from a local file or an http(s) URL.
func (f *Fetcher) readKeys(ctx context.Context, loc string, allowHTTP bool) (openpgp.EntityList, error) {
	data, err := f.readKeyData(ctx, loc, allowHTTP)
	if err != nil {
		return nil, err
	}
	el, err := verify.ReadKeys(data)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", loc, err)
	}
	return el, nil
}

// readKeyData reads a key file or an http(s) URL, bounded.
func (f *Fetcher) readKeyData(ctx context.Context, loc string, allowHTTP bool) ([]byte, error) {
	var data []byte
	if u, err := url.Parse(loc); err == nil && (u.Scheme == "https" || u.Scheme == "http") {
		if u.Scheme == "http" && !allowHTTP {
			return nil, fmt.Errorf("key %s: plain HTTP is not allowed for keys (allow it with --insecure-allow-http): %w", u.Redacted(), errdefs.ErrUntrusted)
		}
		data, err = f.getSmall(ctx, u, verify.MaxKeySize)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", loc, err)
		}
	} else {
		file, err := os.Open(loc)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("key file %s: %w", loc, errdefs.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", loc, err)
		}
		defer file.Close()
		data, err = io.ReadAll(io.LimitReader(file, verify.MaxKeySize+1))
		if err != nil {
			return nil, fmt.Errorf("key file %s: %w", loc, err)
		}
	}
	return data, nil
}

// trustOnFirstUse stores, for an image name with no trusted key yet, the
// keys its discovery offers, when both the discovery page and the keys
// come over HTTPS with a verified certificate (or --insecure-options=pubkey
// accepts less).
// found is what the image's own discovery returned; its keys are used when
// it offers any, else discovery walks on for keys alone.
func (f *Fetcher) trustOnFirstUse(ctx context.Context, app *discovery.App, found *discovered) error {
	keys, err := f.keystore.Keyring(app.Name)
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		return nil
	}
	lax := f.cfg.Insecure.Has(insecure.Pubkey)
	d := found
	if len(d.Keys) == 0 {
		d, err = f.discover(ctx, app, lax && f.cfg.Insecure.Has(insecure.HTTP), func(d *discovered) bool { return len(d.Keys) > 0 })
		if err != nil {
			f.log.Debug("no keys discovered to trust on first use", "image", app.Name.String(), "err", err)
			return nil
		}
	}
	if !d.Secure && !lax {
		f.log.Warn("not trusting keys discovered without verified HTTPS", "page", d.Page)
		return nil
	}
	for _, loc := range d.Keys {
		u, err := url.Parse(loc)
		if err != nil || (u.Scheme != "https" && !(lax && u.Scheme == "http")) {
			f.log.Warn("not trusting key offered over an insecure location", "key", loc)
			continue
		}
		el, err := f.readKeys(ctx, loc, lax)
		if err != nil {
			return err
		}
		for _, e := range el {
			p, err := f.keystore.AddPrefix(app.Name.String(), e)
			if err != nil {
				return err
			}
			f.log.Warn("trusting key on first use (--trust-keys-from-https)", "prefix", app.Name.String(),
				"fingerprint", verify.FormatFingerprint(verify.Fingerprint(e)), "key", loc, "path", p)
		}
	}
	return nil
}
