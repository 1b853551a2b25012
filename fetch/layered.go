package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/orbit-containers/orbit/aci/oci"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/store"
)

// storeLayered stores an OCI image as a layered image: each layer's blob
// (by digest; get stores one the store lacks) and its extracted tree (by
// diff ID; extracted only if no image had it before), then the image's
// manifest with the layers recorded in its index entry. Every blob and
// tree is held from before it is looked at until the image is indexed, so
// a concurrent gc cannot take one away in between.
func (f *Fetcher) storeLayered(ctx context.Context, img v1.Image, info oci.Info, signer string, get func(d v1.Descriptor, i, n int) (string, error)) (store.Image, error) {
	var refs []store.LayerRef
	stored, err := f.storeLayers(ctx, img, info, signer, get, &refs)
	if err != nil && len(refs) > 0 {
		// Nothing of a failed fetch stays: the layers it stored that no
		// other image lists go again.
		if derr := f.cfg.Store.DropLayers(refs); derr != nil {
			f.log.Debug("removing the layers of a failed fetch", "err", derr)
		}
	}
	return stored, err
}

func (f *Fetcher) storeLayers(ctx context.Context, img v1.Image, info oci.Info, signer string, get func(d v1.Descriptor, i, n int) (string, error), out *[]store.LayerRef) (store.Image, error) {
	raw, err := img.RawConfigFile()
	if err != nil {
		return store.Image{}, registryError(err)
	}
	if len(raw) > oci.MaxConfigSize {
		return store.Image{}, fmt.Errorf("image config larger than %d bytes: %w", oci.MaxConfigSize, errdefs.ErrInvalid)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return store.Image{}, fmt.Errorf("image config: %w: %w", err, errdefs.ErrInvalid)
	}
	if cfg.OS != "" && cfg.OS != "linux" {
		return store.Image{}, fmt.Errorf("image is for %s, not linux: %w", cfg.OS, errdefs.ErrInvalid)
	}
	m, err := img.Manifest()
	if err != nil {
		return store.Image{}, registryError(err)
	}
	if len(m.Layers) != len(cfg.RootFS.DiffIDs) {
		return store.Image{}, fmt.Errorf("manifest lists %d layers and the config %d: %w", len(m.Layers), len(cfg.RootFS.DiffIDs), errdefs.ErrInvalid)
	}
	limit := f.cfg.Store.MaxImageSize()
	var total int64
	for _, d := range m.Layers {
		total += d.Size
		if d.Size < 0 || total > limit {
			return store.Image{}, fmt.Errorf("image layers are larger than the limit of %s: %w", store.FormatSize(limit), errdefs.ErrInvalid)
		}
	}
	var held store.Held
	defer held.Release()
	refs := make([]store.LayerRef, len(m.Layers))
	*out = refs
	lowers := make([]string, len(m.Layers))
	for i, d := range m.Layers {
		ref := store.LayerRef{Digest: d.Digest.String(), DiffID: cfg.RootFS.DiffIDs[i].String()}
		refs[i] = ref
		info.Layers = append(info.Layers, ref.Digest)
		info.DiffIDs = append(info.DiffIDs, ref.DiffID)
		if err := f.cfg.Store.HoldLayer(ctx, ref.Digest, &held); err != nil {
			return store.Image{}, err
		}
		if _, err := f.cfg.Store.Layer(ref.Digest); errors.Is(err, errdefs.ErrNotFound) {
			if _, err := get(d, i, len(m.Layers)); err != nil {
				return store.Image{}, err
			}
		} else if err != nil {
			return store.Image{}, err
		}
		start := time.Now()
		p, extracted, err := f.cfg.Store.LayerTree(ctx, ref, &held)
		if err != nil {
			return store.Image{}, fmt.Errorf("layer %d: %w", i+1, err)
		}
		if extracted {
			f.log.Debug("extracted layer", "diffID", ref.DiffID, "took", time.Since(start))
		} else {
			f.log.Debug("layer already extracted", "diffID", ref.DiffID)
		}
		lowers[len(m.Layers)-1-i] = p
	}
	info.ConfigDigest = m.Config.Digest.String()
	userDB, err := oci.UserDB(lowers)
	if err != nil {
		return store.Image{}, err
	}
	im, err := oci.Manifest(cfg, info, userDB)
	if err != nil {
		return store.Image{}, err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(oci.WriteLayeredACI(pw, im, cfg.Created.Time)) }()
	stored, err := f.cfg.Store.Import(pr, store.ImportOptions{Latest: info.Tag == "" || info.Tag == "latest", Signer: signer, Layers: refs})
	pr.Close()
	if err != nil {
		return store.Image{}, err
	}
	f.log.Info("stored OCI image", "image", info.Source, "id", stored.ID)
	return stored, nil
}

// storeLocalLayer stores a layer of a local image (an OCI layout, an OCI
// or docker archive) as a blob, checked against its digest.
func (f *Fetcher) storeLocalLayer(img v1.Image, d v1.Descriptor) (string, error) {
	l, err := img.LayerByDigest(d.Digest)
	if err != nil {
		return "", fmt.Errorf("layer %s: %w: %w", d.Digest, err, errdefs.ErrInvalid)
	}
	rc, err := l.Compressed()
	if err != nil {
		return "", fmt.Errorf("layer %s: %w: %w", d.Digest, err, errdefs.ErrInvalid)
	}
	defer rc.Close()
	limit := d.Size
	if limit <= 0 {
		limit = f.cfg.Store.MaxImageSize()
	}
	return f.cfg.Store.PutLayer(d.Digest.String(), rc, limit)
}
