package fetch

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/appc/spec/schema/types"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/orbit-containers/orbit/aci/oci"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/flock"
	"github.com/orbit-containers/orbit/internal/insecure"
	"github.com/orbit-containers/orbit/store"
)

// ociTransport is where an OCI or Docker image comes from, in the
// containers/image spelling users know from skopeo.
type ociTransport string

const (
	transportDocker        ociTransport = "docker"         // docker://[REGISTRY/]NAME[:TAG|@DIGEST]
	transportOCI           ociTransport = "oci"            // oci:DIR[:TAG]
	transportOCIArchive    ociTransport = "oci-archive"    // oci-archive:FILE[:TAG]
	transportDockerArchive ociTransport = "docker-archive" // docker-archive:FILE
)

// ociRef is a parsed OCI image reference.
type ociRef struct {
	transport ociTransport
	raw       string
	path, tag string         // local sources
	ref       name.Reference // docker://
}

// parseOCIRef recognises the OCI transports; ok is false for any other
// reference (an ACI file, URL, name or ID).
func parseOCIRef(s string) (r ociRef, ok bool, err error) {
	t, rest, found := strings.Cut(s, ":")
	if !found {
		return ociRef{}, false, nil
	}
	r = ociRef{transport: ociTransport(t), raw: s}
	switch r.transport {
	case transportDocker:
		if !strings.HasPrefix(rest, "//") || len(rest) == 2 {
			return r, true, fmt.Errorf("image %q: want docker://[REGISTRY/]NAME[:TAG|@sha256:DIGEST]: %w", s, errdefs.ErrInvalid)
		}
		ref, err := name.ParseReference(dockerHubLibrary(rest[2:]), name.WithDefaultRegistry("registry-1.docker.io"))
		if err != nil {
			return r, true, fmt.Errorf("image %q: %w: %w", s, err, errdefs.ErrInvalid)
		}
		r.ref = ref
	case transportOCI, transportOCIArchive:
		r.path, r.tag = rest, ""
		if i := strings.LastIndex(rest, ":"); i >= 0 && !strings.Contains(rest[i+1:], "/") {
			r.path, r.tag = rest[:i], rest[i+1:]
		}
	case transportDockerArchive:
		r.path = rest
	default:
		return ociRef{}, false, nil
	}
	if r.transport != transportDocker && r.path == "" {
		return r, true, fmt.Errorf("image %q: no path: %w", s, errdefs.ErrInvalid)
	}
	return r, true, nil
}

// dockerHubLibrary puts library/ before a one-word Docker Hub name, as
// docker does (go-containerregistry does it only for index.docker.io).
func dockerHubLibrary(s string) string {
	first, _, _ := strings.Cut(s, "/")
	if strings.Contains(s, "/") && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return s // names a registry
	}
	if !strings.Contains(s, "/") {
		return "library/" + s
	}
	return s
}

// ParseReference checks an image reference's syntax before anything is
// fetched: for the OCI transports, the whole reference.
func ParseReference(s string) error {
	_, _, err := parseOCIRef(s)
	return err
}

// fetchOCI fetches an OCI or Docker image, converts it and stores it.
func (f *Fetcher) fetchOCI(ctx context.Context, r ociRef, policy PullPolicy) (string, error) {
	if r.transport == transportDocker {
		return f.fetchDocker(ctx, r, policy)
	}
	if !f.cfg.Insecure.Has(insecure.Image) {
		return "", fmt.Errorf("image %s: local %s images carry no signature orbit can check: skip verification with --insecure-options=image: %w", r.raw, r.transport, errdefs.ErrUntrusted)
	}
	img, info, cleanup, err := f.openLocal(ctx, r)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", r.raw, err)
	}
	defer cleanup()
	f.log.Warn("signature verification has been disabled", "image", r.raw)
	stored, err := f.importOCI(ctx, img, info, store.Unverified)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", r.raw, err)
	}
	return stored.ID, nil
}

// openLocal opens an image of a local transport.
func (f *Fetcher) openLocal(ctx context.Context, r ociRef) (v1.Image, oci.Info, func(), error) {
	nothing := func() {}
	info := oci.Info{Source: r.raw, Tag: r.tag}
	if _, err := os.Stat(r.path); errors.Is(err, os.ErrNotExist) {
		return nil, info, nothing, fmt.Errorf("%s: %w", r.path, errdefs.ErrNotFound)
	}
	switch r.transport {
	case transportDockerArchive:
		m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(r.path) })
		if err != nil {
			return nil, info, nothing, fmt.Errorf("reading docker archive: %w: %w", err, errdefs.ErrInvalid)
		}
		if len(m) != 1 {
			return nil, info, nothing, fmt.Errorf("docker archive holds %d images, want one: %w", len(m), errdefs.ErrInvalid)
		}
		info.Name = "docker-archive/" + sanitizeBase(r.path)
		if len(m[0].RepoTags) > 0 {
			if tag, err := name.NewTag(m[0].RepoTags[0], name.WithDefaultRegistry("registry-1.docker.io")); err == nil {
				info.Name = tag.Context().Name()
				info.Tag = tag.TagStr()
				info.Registry, info.Repository = tag.RegistryStr(), tag.RepositoryStr()
			}
		}
		img, err := tarball.ImageFromPath(r.path, nil)
		if err != nil {
			return nil, info, nothing, fmt.Errorf("reading docker archive: %w: %w", err, errdefs.ErrInvalid)
		}
		return img, info, nothing, nil
	case transportOCIArchive:
		dir, cleanup, err := f.tempDir()
		if err != nil {
			return nil, info, nothing, err
		}
		if err := unpackLayout(ctx, r.path, dir, f.cfg.Store.MaxImageSize()); err != nil {
			cleanup()
			return nil, info, nothing, err
		}
		img, err := openLayout(dir, r.tag, &info)
		if err != nil {
			cleanup()
			return nil, info, nothing, err
		}
		info.Name = "oci-archive/" + sanitizeBase(r.path)
		return img, info, cleanup, nil
	}
	img, err := openLayout(r.path, r.tag, &info)
	if err != nil {
		return nil, info, nothing, err
	}
	info.Name = "oci/" + sanitizeBase(r.path)
	return img, info, nothing, nil
}

// tempDir creates a directory in the store's tmp directory, locked while
// in use so that `orbit image gc` leaves it alone; cleanup removes it.
func (f *Fetcher) tempDir() (string, func(), error) {
	parent := f.cfg.TempDir
	if parent == "" {
		parent = filepath.Join(f.cfg.Store.Dir(), "tmp")
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", nil, err
	}
	dir, err := os.MkdirTemp(parent, "oci-*")
	if err != nil {
		return "", nil, err
	}
	d, err := os.Open(dir)
	if err != nil {
		os.Remove(dir)
		return "", nil, err
	}
	lock := flock.FromFile(d)
	if err := lock.TryLock(flock.Exclusive); err != nil {
		lock.Close()
		os.Remove(dir)
		return "", nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return dir, func() { os.RemoveAll(dir); lock.Close() }, nil
}

// sanitizeBase is the last element of a path, without an archive suffix.
func sanitizeBase(p string) string {
	b := filepath.Base(filepath.Clean(p))
	for _, ext := range []string{".tar", ".tar.gz", ".tgz"} {
		b = strings.TrimSuffix(b, ext)
	}
	return b
}

// openLayout finds the image tagged tag (or the only image) in an OCI
// layout, picking linux and this machine's architecture from an index.
func openLayout(dir, tag string, info *oci.Info) (v1.Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("reading OCI layout: %w: %w", err, errdefs.ErrInvalid)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("reading OCI layout: %w: %w", err, errdefs.ErrInvalid)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading OCI layout index: %w: %w", err, errdefs.ErrInvalid)
	}
	var found []v1.Descriptor
	for _, d := range im.Manifests {
		ref := d.Annotations["org.opencontainers.image.ref.name"]
		if tag == "" || ref == tag || strings.HasSuffix(ref, ":"+tag) {
			found = append(found, d)
		}
	}
	switch {
	case len(found) == 0 && tag != "":
		return nil, fmt.Errorf("OCI layout has no image tagged %q: %w", tag, errdefs.ErrNotFound)
	case len(found) != 1:
		return nil, fmt.Errorf("OCI layout holds %d images: name one with :TAG: %w", len(found), errdefs.ErrInvalid)
	}
	d := found[0]
	if tag == "" {
		if ref := d.Annotations["org.opencontainers.image.ref.name"]; ref != "" && !strings.ContainsAny(ref, "/:") {
			info.Tag = ref
		}
	}
	if d.MediaType.IsIndex() {
		sub, err := idx.ImageIndex(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading OCI layout index %s: %w: %w", d.Digest, err, errdefs.ErrInvalid)
		}
		d, err = pickPlatform(sub)
		if err != nil {
			return nil, err
		}
		info.ManifestDigest = d.Digest.String()
		img, err := sub.Image(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading OCI image %s: %w: %w", d.Digest, err, errdefs.ErrInvalid)
		}
		return img, nil
	}
	if !d.MediaType.IsImage() {
		return nil, fmt.Errorf("OCI layout entry %s is a %s, not an image: %w", d.Digest, d.MediaType, errdefs.ErrInvalid)
	}
	info.ManifestDigest = d.Digest.String()
	img, err := idx.Image(d.Digest)
	if err != nil {
		return nil, fmt.Errorf("reading OCI image %s: %w: %w", d.Digest, err, errdefs.ErrInvalid)
	}
	return img, nil
}

// hostPlatform is what an index entry must be for to run here.
func hostPlatform() v1.Platform {
	p := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
	if runtime.GOARCH == "arm" {
		p.Variant = "v7"
	}
	return p
}

// pickPlatform chooses linux and this machine's architecture from an index.
func pickPlatform(idx v1.ImageIndex) (v1.Descriptor, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, fmt.Errorf("reading image index: %w: %w", err, errdefs.ErrInvalid)
	}
	want := hostPlatform()
	var have []string
	for _, d := range im.Manifests {
		if d.Platform == nil || !d.MediaType.IsImage() {
			continue
		}
		if d.Platform.OS == want.OS && d.Platform.Architecture == want.Architecture &&
			(want.Variant == "" || d.Platform.Variant == "" || d.Platform.Variant == want.Variant) {
			return d, nil
		}
		have = append(have, d.Platform.String())
	}
	return v1.Descriptor{}, fmt.Errorf("image index has no image for %s (it has %s): %w", want.String(), strings.Join(have, ", "), errdefs.ErrNotFound)
}

// unpackLayout extracts an OCI archive: a tar of an OCI layout. Only the
// layout's own files are accepted (oci-layout, index.json, blobs/ALG/HEX),
// so nothing in the archive can write elsewhere.
func unpackLayout(ctx context.Context, archive, dir string, limit int64) error {
	file, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer file.Close()
	tr := tar.NewReader(contextReader{ctx, file})
	var total int64
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading OCI archive: %w: %w", err, errdefs.ErrInvalid)
		}
		n := strings.TrimPrefix(filepath.Clean(strings.TrimPrefix(hdr.Name, "./")), "./")
		parts := strings.Split(n, "/")
		switch {
		case hdr.Typeflag == tar.TypeDir && (n == "." || n == "blobs" || (len(parts) == 2 && parts[0] == "blobs" && validHex(parts[1], false))):
			if err := os.MkdirAll(filepath.Join(dir, n), 0o755); err != nil {
				return err
			}
			continue
		case hdr.Typeflag != tar.TypeReg:
			return fmt.Errorf("OCI archive entry %q: not a layout file: %w", hdr.Name, errdefs.ErrInvalid)
		case n == "oci-layout" || n == "index.json":
		case len(parts) == 3 && parts[0] == "blobs" && validHex(parts[1], false) && validHex(parts[2], true):
			if err := os.MkdirAll(filepath.Join(dir, parts[0], parts[1]), 0o755); err != nil {
				return err
			}
		default:
			return fmt.Errorf("OCI archive entry %q: not a layout file: %w", hdr.Name, errdefs.ErrInvalid)
		}
		total += hdr.Size
		if total > limit {
			return fmt.Errorf("OCI archive is larger than the limit of %s: %w", store.FormatSize(limit), errdefs.ErrInvalid)
		}
		out, err := os.OpenFile(filepath.Join(dir, n), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("OCI archive entry %q: %w", hdr.Name, err)
		}
		_, err = io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("OCI archive entry %q: %w", hdr.Name, err)
		}
	}
}

// validHex accepts an algorithm name (lowercase letters and digits) or,
// when hex, a lowercase hex string.
func validHex(s string, hex bool) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, c := range s {
		ok := (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (!hex && c >= 'a' && c <= 'z')
		if !ok {
			return false
		}
	}
	return true
}

// importOCI stores a local image as a layered image.
func (f *Fetcher) importOCI(ctx context.Context, img v1.Image, info oci.Info, signer string) (store.Image, error) {
	return f.storeLayered(ctx, img, info, signer, func(d v1.Descriptor, _, _ int) (string, error) {
		return f.storeLocalLayer(img, d)
	})
}

// OCIStoredName says, for an OCI reference (docker://, oci:, oci-archive:,
// docker-archive:), the appc name and version label the image is stored
// under once fetched (a docker archive's name is read from the archive, so
// only its fallback is known). ok is false for any other reference.
func OCIStoredName(s string) (appName, version string, ok bool) {
	r, ok, err := parseOCIRef(s)
	if !ok || err != nil {
		return "", "", false
	}
	version = r.tag
	var n string
	switch r.transport {
	case transportDocker:
		n = r.ref.Context().Name()
		if t, isTag := r.ref.(name.Tag); isTag {
			version = t.TagStr()
		}
	case transportOCI:
		n = "oci/" + sanitizeBase(r.path)
	case transportOCIArchive:
		n = "oci-archive/" + sanitizeBase(r.path)
	case transportDockerArchive:
		n = "docker-archive/" + sanitizeBase(r.path)
	}
	if clean, err := types.SanitizeACIdentifier(n); err == nil {
		n = clean
	}
	if version == "" {
		version = "latest"
	}
	return n, version, true
}
