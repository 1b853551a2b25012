package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/appc/spec/schema/types"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/verify"
)

// Signature formats of OCI images.
const (
	simpleSigningType  = "atomic container signature"       // OpenPGP simple signing
	cosignType         = "cosign container image signature" // sigstore/cosign
	cosignPayloadType  = "application/vnd.dev.cosign.simplesigning.v1+json"
	cosignSignatureKey = "dev.cosignproject.cosign/signature"
)

// Bounds on what a registry or lookaside server hands out for signatures.
const (
	maxSignatures     = 32
	maxCosignManifest = 1 << 20
)

// signaturePayload is the signed JSON of both signature formats. Its
// critical section must be understood in full: an unknown field there
// refuses the signature.
type signaturePayload struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional json.RawMessage `json:"optional"`
}

// checkPayload checks a verified payload against what was asked for: its
// type, the manifest digest the registry sent, and its identity: the same
// repository, and for a tag the same tag (containers/image's
// matchRepoDigestOrExact).
func checkPayload(data []byte, wantType string, ref name.Reference, digest v1.Hash) error {
	var p signaturePayload
	var raw struct {
		Critical json.RawMessage `json:"critical"`
		Optional json.RawMessage `json:"optional"`
	}
	if err := json.Unmarshal(data, &raw); err != nil || len(raw.Critical) == 0 {
		return fmt.Errorf("signed payload is not a signature's JSON: %w", errdefs.ErrUntrusted)
	}
	dec := json.NewDecoder(bytes.NewReader(raw.Critical))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p.Critical); err != nil {
		return fmt.Errorf("signed payload's critical section is not understood (%v): %w", err, errdefs.ErrUntrusted)
	}
	c := p.Critical
	if c.Type != wantType {
		return fmt.Errorf("signature has type %q, want %q: %w", c.Type, wantType, errdefs.ErrUntrusted)
	}
	if c.Image.DockerManifestDigest != digest.String() {
		return fmt.Errorf("signature is for manifest %q, not %s, the manifest the registry sent: %w", c.Image.DockerManifestDigest, digest, errdefs.ErrUntrusted)
	}
	signed, err := name.ParseReference(c.Identity.DockerReference, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("signature's identity %q is not an image reference: %w", c.Identity.DockerReference, errdefs.ErrUntrusted)
	}
	mismatch := fmt.Errorf("signature is for %q, not %s: %w", c.Identity.DockerReference, ref.Name(), errdefs.ErrUntrusted)
	if repoName(signed.Context()) != repoName(ref.Context()) {
		return mismatch
	}
	if t, ok := ref.(name.Tag); ok {
		st, ok := signed.(name.Tag)
		if !ok || st.TagStr() != t.TagStr() {
			return mismatch
		}
	}
	return nil
}

// repoName is a repository's full name with Docker Hub's aliases made one.
func repoName(r name.Repository) string {
	reg := r.RegistryStr()
	switch reg {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		reg = "docker.io"
	}
	return reg + "/" + r.RepositoryStr()
}

// verifyDocker checks a registry image's signatures before any layer is
// admitted and returns the fingerprint of the key that signed it: OpenPGP
// simple signing from the lookaside location registries.d gives for the
// image, and cosign key-pair signatures attached in the registry. One
// good signature whose identity and digest match is enough.
func (f *Fetcher) verifyDocker(ctx context.Context, ref name.Reference, desc *remote.Descriptor, opts []remote.Option) (string, error) {
	appName, err := types.SanitizeACIdentifier(ref.Context().Name())
	if err != nil {
		return "", fmt.Errorf("image name %s: %w: %w", ref.Context().Name(), err, errdefs.ErrInvalid)
	}
	id := types.ACIdentifier(appName)
	regs, err := f.registriesD()
	if err != nil {
		return "", err
	}
	src := regs.sourceFor(ref.Context().Name())
	var firstErr error
	tried := false
	if base := src.lookaside(); base != "" {
		sigs, err := f.lookasideSignatures(ctx, base, ref.Context(), desc.Digest)
		if err != nil {
			return "", err
		}
		for _, sig := range sigs {
			tried = true
			signer, err := f.checkSimpleSigning(id, sig, ref, desc.Digest)
			if err == nil {
				f.log.Info("signature verified", "format", "simple signing", "key", signer)
				return signer, nil
			}
			f.log.Debug("signature refused", "err", err)
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	pubKeys, err := f.keystore.PublicKeys(id)
	if err != nil {
		return "", err
	}
	if (src.UseSigstoreAttachments != nil && *src.UseSigstoreAttachments) || len(pubKeys) > 0 {
		sigs, err := f.cosignSignatures(ctx, ref.Context(), desc.Digest, opts)
		if err != nil {
			return "", err
		}
		for _, s := range sigs {
			tried = true
			signer, err := f.keystore.VerifyECDSA(id, s.payload, s.signature)
			if err == nil {
				err = checkPayload(s.payload, cosignType, ref, desc.Digest)
			}
			if err == nil {
				f.log.Info("signature verified", "format", "cosign", "key", signer.Fingerprint)
				return signer.Fingerprint, nil
			}
			f.log.Debug("signature refused", "err", err)
			if firstErr == nil {
				firstErr = fmt.Errorf("cosign signature: %w", err)
			}
		}
	}
	if firstErr != nil {
		return "", firstErr
	}
	where := "no lookaside location is configured for " + ref.Context().Name() + " in registries.d"
	if src.lookaside() != "" {
		where = "none at " + src.lookaside()
	}
	if !tried {
		return "", fmt.Errorf("has no signature (%s, and no cosign signature or trusted public key): trust the publisher's key with 'orbit trust --prefix %s KEY', or skip verification with --insecure-options=image: %w", where, ref.Context().Name(), errdefs.ErrUntrusted)
	}
	return "", fmt.Errorf("has no good signature: %w", errdefs.ErrUntrusted)
}

// checkSimpleSigning verifies one OpenPGP simple signing signature.
func (f *Fetcher) checkSimpleSigning(id types.ACIdentifier, sig []byte, ref name.Reference, digest v1.Hash) (string, error) {
	payload, signer, err := f.keystore.VerifyMessage(id, sig)
	if err != nil {
		return "", err
	}
	if err := checkPayload(payload, simpleSigningType, ref, digest); err != nil {
		return "", err
	}
	return signer.Fingerprint, nil
}

// registriesD reads registries.d: the containers tools' directory, then
// orbit's system, then its local configuration's, each overriding the one
// before for the namespaces it names.
func (f *Fetcher) registriesD() (*registriesConfig, error) {
	containers := f.cfg.ContainersRegistriesDir
	if containers == "" {
		containers = ContainersRegistriesDir
	}
	dirs := []string{containers}
	for _, c := range []string{f.cfg.SystemConfig, f.cfg.LocalConfig} {
		if c != "" {
			dirs = append(dirs, filepath.Join(c, "registries.d"))
		}
	}
	return loadRegistriesD(dirs...)
}

// lookasideSignatures fetches signature-1, signature-2, … of a manifest
// from a lookaside location, until one is missing. Signatures
// authenticate themselves, so plain HTTP and file URLs are accepted.
func (f *Fetcher) lookasideSignatures(ctx context.Context, base string, repo name.Repository, digest v1.Hash) ([][]byte, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") {
		return nil, fmt.Errorf("registries.d: lookaside %q is not an http, https or file URL: %w", base, errdefs.ErrInvalid)
	}
	dir := strings.TrimSuffix(u.Path, "/") + "/" + repo.RepositoryStr() + "@" + digest.Algorithm + "=" + digest.Hex
	var sigs [][]byte
	for i := 1; i <= maxSignatures; i++ {
		su := *u
		su.Path = fmt.Sprintf("%s/signature-%d", dir, i)
		var data []byte
		if u.Scheme == "file" {
			data, err = readSmallFile(su.Path, verify.MaxSignatureSize)
		} else {
			data, err = f.getSmall(ctx, &su, verify.MaxSignatureSize)
		}
		if errors.Is(err, errdefs.ErrNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("signature: %w", err)
		}
		sigs = append(sigs, data)
	}
	return sigs, nil
}

func readSmallFile(p string, limit int64) ([]byte, error) {
	file, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", p, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes: %w", p, limit, errdefs.ErrInvalid)
	}
	return data, nil
}

// cosignSignature is one payload of a cosign signature image with its
// signature annotation.
type cosignSignature struct {
	payload   []byte
	signature string
}

// cosignTag is the tag cosign attaches a manifest's signatures under.
func cosignTag(repo name.Repository, digest v1.Hash) name.Tag {
	return repo.Tag(digest.Algorithm + "-" + digest.Hex + ".sig")
}

// cosignSignatures fetches the signature image cosign attached to a
// manifest: none when the registry has no such tag.
func (f *Fetcher) cosignSignatures(ctx context.Context, repo name.Repository, digest v1.Hash, opts []remote.Option) ([]cosignSignature, error) {
	tag := cosignTag(repo, digest)
	desc, err := remote.Get(tag, opts...)
	if err != nil {
		rerr := registryError(err)
		if errors.Is(rerr, errdefs.ErrNotFound) {
			return nil, nil
		}
		return nil, fmt.Errorf("cosign signature %s: %w", tag.TagStr(), rerr)
	}
	if len(desc.Manifest) > maxCosignManifest {
		return nil, fmt.Errorf("cosign signature manifest larger than %d bytes: %w", maxCosignManifest, errdefs.ErrInvalid)
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return nil, fmt.Errorf("cosign signature manifest: %w: %w", err, errdefs.ErrInvalid)
	}
	if len(m.Layers) > maxSignatures {
		return nil, fmt.Errorf("cosign signature image has %d layers, more than %d: %w", len(m.Layers), maxSignatures, errdefs.ErrInvalid)
	}
	var out []cosignSignature
	for _, l := range m.Layers {
		if string(l.MediaType) != cosignPayloadType {
			continue
		}
		sig, ok := l.Annotations[cosignSignatureKey]
		if !ok || l.Size <= 0 || l.Size > verify.MaxSignedPayload {
			continue
		}
		payload, err := f.smallBlob(repo, l.Digest, l.Size, opts)
		if err != nil {
			return nil, fmt.Errorf("cosign signature payload %s: %w", l.Digest, err)
		}
		out = append(out, cosignSignature{payload: payload, signature: sig})
	}
	return out, nil
}

// smallBlob downloads a blob of a known small size and checks its digest.
func (f *Fetcher) smallBlob(repo name.Repository, digest v1.Hash, size int64, opts []remote.Option) ([]byte, error) {
	l, err := remote.Layer(repo.Digest(digest.String()), opts...)
	if err != nil {
		return nil, registryError(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, registryError(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, size+1))
	if err != nil {
		return nil, registryError(err)
	}
	sum := sha256.Sum256(data)
	if int64(len(data)) != size || digest.Algorithm != "sha256" || hex.EncodeToString(sum[:]) != digest.Hex {
		return nil, fmt.Errorf("blob does not match its digest %s: %w", digest, errdefs.ErrUntrusted)
	}
	return data, nil
}
