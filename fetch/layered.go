package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sync/errgroup"

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
	// A layer stored before the fetch failed stays, checked and complete,
	// for the next attempt (gc removes it if none comes).
	return f.storeLayers(ctx, img, info, signer, get)
}

func (f *Fetcher) storeLayers(ctx context.Context, img v1.Image, info oci.Info, signer string, get func(d v1.Descriptor, i, n int) (string, error)) (store.Image, error) {
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
	refs := make([]store.LayerRef, len(m.Layers))
	for i, d := range m.Layers {
		refs[i] = store.LayerRef{Digest: d.Digest.String(), DiffID: cfg.RootFS.DiffIDs[i].String()}
		info.Layers = append(info.Layers, refs[i].Digest)
		info.DiffIDs = append(info.DiffIDs, refs[i].DiffID)
	}
	// Layers are fetched side by side: one layer's download overlaps
	// others' extraction. Downloads take turns, lowest layer first, so
	// that a terminal shows one progress line at a time and a registry
	// sees the requests it would see one by one.
	turns := make([]chan struct{}, len(m.Layers)+1)
	for i := range turns {
		turns[i] = make(chan struct{})
	}
	close(turns[0])
	helds := make([]store.Held, len(m.Layers))
	defer func() {
		for i := range helds {
			helds[i].Release()
		}
	}()
	lowers := make([]string, len(m.Layers))
	sizes := make([]int64, len(m.Layers))
	// The layers this image extracts are held to the maximum image size
	// together.
	budget := oci.NewBudget(limit)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(maxParallelLayers)
	for i, d := range m.Layers {
		g.Go(func() error {
			// The turn passes once this layer's blob is stored (or found
			// stored), never before the layers below have had theirs.
			var once sync.Once
			pass := func() { once.Do(func() { close(turns[i+1]) }) }
			defer pass()
			t, err := f.storeLayer(gctx, refs[i], func(download bool) error {
				select {
				case <-turns[i]:
				case <-gctx.Done():
					return gctx.Err()
				}
				defer pass()
				if !download {
					return nil
				}
				// An image may list a layer twice: the first stores it.
				if _, err := f.cfg.Store.Layer(refs[i].Digest); err == nil {
					return nil
				}
				_, err := get(d, i, len(m.Layers))
				return err
			}, &helds[i], budget)
			if err != nil {
				return fmt.Errorf("layer %d: %w", i+1, err)
			}
			lowers[len(m.Layers)-1-i] = t.Path
			sizes[i] = t.Size
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return store.Image{}, err
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
	var layersSize int64
	for _, n := range sizes {
		layersSize += n
	}
	stored, err := f.cfg.Store.Import(pr, store.ImportOptions{Latest: info.Tag == "" || info.Tag == "latest", Signer: signer, Layers: refs, LayersSize: layersSize})
	pr.Close()
	if err != nil {
		return store.Image{}, err
	}
	f.log.Info("stored OCI image", "image", info.Source, "id", stored.ID)
	return stored, nil
}

// maxParallelLayers is how many layers of an image are fetched at once.
const maxParallelLayers = 3

// storeLayer makes sure a layer's blob and its tree are in the store, held
// in h, and returns the tree's rootfs. blob is called with whether the
// blob must be downloaded (and then stores it) before the tree is looked
// at; the caller turns that into the layer's turn to download.
func (f *Fetcher) storeLayer(ctx context.Context, ref store.LayerRef, blob func(download bool) error, h *store.Held, b *oci.Budget) (store.LayerTreeInfo, error) {
	var none store.LayerTreeInfo
	if err := f.cfg.Store.HoldLayer(ctx, ref.Digest, h); err != nil {
		return none, err
	}
	_, err := f.cfg.Store.Layer(ref.Digest)
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return none, err
	}
	if err := blob(err != nil); err != nil {
		return none, err
	}
	start := time.Now()
	t, err := f.cfg.Store.LayerTree(ctx, ref, h, b)
	if err != nil {
		return none, err
	}
	if t.Extracted {
		f.log.Debug("extracted layer", "diffID", ref.DiffID, "took", time.Since(start))
	} else {
		f.log.Debug("layer already extracted", "diffID", ref.DiffID)
	}
	return t, nil
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
