package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	bolt "go.etcd.io/bbolt"

	"github.com/orbit-containers/orbit/aci"
	"github.com/orbit-containers/orbit/aci/oci"
	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/flock"
	"github.com/orbit-containers/orbit/internal/poll"
)

// Layered images. An OCI image is stored as a small ACI (its manifest and
// an empty rootfs) whose index record lists its layers, lowest first, by
// blob digest and diff ID. Each layer is extracted once, by diff ID, into
// cas/layertrees/<hex>/rootfs (whiteouts as overlayfs's), shared by every
// image that has it; an app's rootfs is an overlay with the layer trees as
// lower directories. A layer tree is complete once its .extracted marker
// exists. Blobs and layer trees are each guarded by a lock file,
// cas/locks/layer-blob-<digest hex>.lock and layer-tree-<diff ID hex>.lock: a command
// that needs one holds it shared until its image is indexed or its tree
// rendered, and gc removes one only while holding it exclusively and after
// finding, then, that no image record and no rendered tree lists it.

const (
	extractedMarker = ".extracted"
	extractPrefix   = ".extract-"
	// treeLayersFile lists, in a rendered tree of a layered image, the
	// diff IDs of its layers, top first.
	treeLayersFile = "layers"
)

// LayerRef names one layer of a layered image.
type LayerRef struct {
	Digest string `json:"digest"` // the blob's, as served (compressed)
	DiffID string `json:"diffID"` // the uncompressed tar's
}

func (s *Store) layerTreesDir() string           { return filepath.Join(s.dir, "layertrees") }
func (s *Store) layerTreePath(hex string) string { return filepath.Join(s.layerTreesDir(), hex) }

// layerLockPath is the lock of a layer blob (kind "blob", by digest) or
// tree (kind "tree", by diff ID): two locks, since an uncompressed
// layer's digest is its diff ID.
func (s *Store) layerLockPath(kind, hex string) string {
	return filepath.Join(s.locksDir(), "layer-"+kind+"-"+hex+".lock")
}

// Held is a set of layer locks a command holds shared.
type Held struct{ locks []*flock.Lock }

// Release drops the locks.
func (h *Held) Release() {
	if h == nil {
		return
	}
	for _, l := range h.locks {
		l.Close()
	}
	h.locks = nil
}

// HoldLayer takes the lock of a layer blob (by its digest) shared, into
// h, so that gc leaves the blob alone until h is released. (LayerTree
// holds a layer tree likewise.)
func (s *Store) HoldLayer(ctx context.Context, digest string, h *Held) error {
	hex, err := layerHex(digest)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.locksDir(), 0o755); err != nil {
		return err
	}
	l, err := flock.Acquire(ctx, s.layerLockPath("blob", hex), flock.Shared)
	if err != nil {
		return fmt.Errorf("layer %s: %w", digest, err)
	}
	h.locks = append(h.locks, l)
	return nil
}

// LayerTreeInfo describes a layer tree.
type LayerTreeInfo struct {
	// Path is the tree's root filesystem.
	Path string
	// Size is the layer's uncompressed size.
	Size int64
	// Extracted says whether the call that returned it extracted it.
	Extracted bool
}

// LayerTree returns the layer tree of ref, extracting it from the stored
// blob first if no process has, taking what it reads from b (nil: a budget
// of the maximum image size of its own). The tree's lock is held shared
// in h.
func (s *Store) LayerTree(ctx context.Context, ref LayerRef, h *Held, b *oci.Budget) (info LayerTreeInfo, err error) {
	hex, err := layerHex(ref.DiffID)
	if err != nil {
		return info, err
	}
	if b == nil {
		b = oci.NewBudget(s.limits.maxImageSize())
	}
	dir := s.layerTreePath(hex)
	info.Path = filepath.Join(dir, aci.RootfsName)
	complete := func() bool {
		size, ok := readExtracted(dir)
		info.Size = size
		return ok
	}
	if err := os.MkdirAll(s.locksDir(), 0o755); err != nil {
		return info, err
	}
	for range treeAttempts {
		l, err := flock.Acquire(ctx, s.layerLockPath("tree", hex), flock.Shared)
		if err != nil {
			return info, fmt.Errorf("layer %s: %w", ref.DiffID, err)
		}
		if complete() {
			h.locks = append(h.locks, l)
			return info, nil
		}
		l.Close()
		// Never waiting for the exclusive lock: others hold the shared one
		// for as long as their fetch lasts, this process included (an image
		// may list a layer twice). Once another finished the tree, it is
		// taken shared instead.
		l = nil
		err = poll.WhileBusy(ctx, func() (err error) {
			l, err = flock.TryAcquire(s.layerLockPath("tree", hex), flock.Exclusive)
			if errors.Is(err, errdefs.ErrBusy) && complete() {
				return nil // l is nil
			}
			return err
		})
		if err != nil {
			return info, fmt.Errorf("layer %s: %w", ref.DiffID, err)
		}
		if l == nil {
			continue
		}
		if !complete() {
			if err := s.extractLayer(ctx, ref, hex, b); err != nil {
				l.Close()
				return info, err
			}
			info.Extracted = true
		}
		l.Close() // taken again shared: gc may come in between
	}
	return info, fmt.Errorf("layer %s keeps being removed while extracted: %w", ref.DiffID, errdefs.ErrBusy)
}

// readExtracted reads a layer tree's marker: the diff ID and the layer's
// uncompressed size. ok is false for an incomplete tree.
func readExtracted(dir string) (size int64, ok bool) {
	data, err := os.ReadFile(filepath.Join(dir, extractedMarker))
	if err != nil {
		return 0, false
	}
	f := strings.Fields(string(data))
	if len(f) > 1 {
		size, _ = strconv.ParseInt(f[1], 10, 64)
	}
	return size, true
}

// extractLayer extracts a layer tree from its blob into a temp dir beside
// it, checking the diff ID, and renames it into place once complete. The
// caller holds the tree's lock exclusively.
func (s *Store) extractLayer(ctx context.Context, ref LayerRef, hex string, b *oci.Budget) error {
	blob, err := s.Layer(ref.Digest)
	if err != nil {
		return fmt.Errorf("layer %s: the blob is not in the store (fetch the image again): %w", ref.Digest, err)
	}
	if err := os.MkdirAll(s.layerTreesDir(), 0o755); err != nil {
		return err
	}
	return buildDir(s.layerTreesDir(), extractPrefix+hex+"-", s.layerTreePath(hex), extractedMarker, func(tmp string) ([]byte, error) {
		rc, err := oci.OpenBlob(blob)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", ref.Digest, err)
		}
		defer rc.Close()
		diffID, err := v1.NewHash(ref.DiffID)
		if err != nil {
			return nil, fmt.Errorf("layer %s: diff ID: %w: %w", ref.Digest, err, errdefs.ErrInvalid)
		}
		if err := checkFree(s.layerTreesDir(), 0); err != nil {
			return nil, err
		}
		checked, err := oci.CheckedLayer(readerLayer{&freeReader{r: rc, dir: s.layerTreesDir(), next: freeCheckPeriod}}, diffID).Uncompressed()
		if err != nil {
			return nil, err
		}
		size, err := oci.ExtractLayer(ctx, checked, tmp, b)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", ref.DiffID, err)
		}
		return []byte(fmt.Sprintf("%s %d\n", ref.DiffID, size)), nil
	})
}

// freeReader fails once the filesystem of dir runs short of space, checked
// every freeCheckPeriod bytes read: what is read is written out.
type freeReader struct {
	r    io.Reader
	dir  string
	n    int64
	next int64
}

func (f *freeReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	f.n += int64(n)
	if f.n >= f.next {
		f.next += freeCheckPeriod
		if ferr := checkFree(f.dir, freeCheckPeriod); ferr != nil {
			return n, ferr
		}
	}
	return n, err
}

// readerLayer is an oci.Layer read once.
type readerLayer struct{ r io.Reader }

func (l readerLayer) Uncompressed() (io.ReadCloser, error) { return io.NopCloser(l.r), nil }

// layerRefs returns the layers an image record lists; nil for an ACI.
func (s *Store) layerRefs(id string) ([]LayerRef, error) {
	var refs []LayerRef
	err := s.view(func(tx *bolt.Tx) error {
		rec, ok, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return errNotIndexed(id)
		}
		refs = rec.Layers
		return nil
	})
	return refs, err
}

// LayerTrees returns the layer trees of a layered image, top first (as
// overlayfs takes lower directories), extracting any that is missing, with
// their locks held shared in h; nil for an ACI.
func (s *Store) LayerTrees(ctx context.Context, id string, h *Held) ([]string, error) {
	refs, err := s.layerRefs(id)
	if err != nil || len(refs) == 0 {
		return nil, err
	}
	lowers := make([]string, len(refs))
	for i, ref := range refs {
		info, err := s.LayerTree(ctx, ref, h, nil)
		if err != nil {
			return nil, err
		}
		lowers[len(refs)-1-i] = info.Path
	}
	return topmost(lowers), nil
}

// topmost drops, from lowers (top first), each directory after its first
// occurrence. overlayfs refuses a lower directory twice, and an image may
// list a layer twice (repeated empty layers); the upper occurrence alone
// gives the same tree: whatever the lower one provides or hides, the
// upper one provides or hides again, over everything in between.
func topmost(lowers []string) []string {
	seen := map[string]bool{}
	out := lowers[:0:0]
	for _, l := range lowers {
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	return out
}

// layersInUse lists the blob digests and diff IDs (hex) that image
// records and rendered trees (complete or not) list.
func (s *Store) layersInUse(tx *bolt.Tx) (map[string]bool, error) {
	used := map[string]bool{}
	err := forEachRecord(tx, func(_ string, rec record) error {
		for _, l := range rec.Layers {
			used[strings.TrimPrefix(l.Digest, "sha256:")] = true
			used[strings.TrimPrefix(l.DiffID, "sha256:")] = true
		}
		for _, d := range legacyLayers(rec) {
			used[strings.TrimPrefix(d, "sha256:")] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(s.treesDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(s.treesDir(), e.Name(), treeLayersFile))
		if err != nil {
			continue
		}
		for _, d := range strings.Fields(string(data)) {
			used[strings.TrimPrefix(d, "sha256:")] = true
		}
	}
	return used, nil
}

// gcLayerFiles removes layer blobs and layer trees that no image and no
// rendered tree lists and that no command holds; only, when only is not
// nil, those it names (hex). Each is checked again once its lock is held
// exclusively, since a fetch indexes its image before it lets go.
func (s *Store) gcLayerFiles(rep *GCReport, only map[string]bool) error {
	type cand struct{ hex, path, kind string }
	var cands []cand
	if files, err := os.ReadDir(s.layersDir()); err == nil {
		for _, f := range files {
			cands = append(cands, cand{f.Name(), filepath.Join(s.layersDir(), f.Name()), "blob"})
		}
	}
	if dirs, err := os.ReadDir(s.layerTreesDir()); err == nil {
		for _, d := range dirs {
			name := d.Name()
			if rest, ok := strings.CutPrefix(name, extractPrefix); ok {
				// An extraction's temp dir: the hex is before the last "-".
				if i := strings.LastIndex(rest, "-"); i > 0 {
					cands = append(cands, cand{rest[:i], filepath.Join(s.layerTreesDir(), name), "temp"})
				}
				continue
			}
			cands = append(cands, cand{name, filepath.Join(s.layerTreesDir(), name), "tree"})
		}
	}
	var errs []error
	for _, c := range cands {
		if _, err := layerHex("sha256:" + c.hex); err != nil || (only != nil && !only[c.hex]) {
			continue
		}
		kind := "tree"
		if c.kind == "blob" {
			kind = "blob"
		}
		l, err := flock.TryAcquire(s.layerLockPath(kind, c.hex), flock.Exclusive)
		if err != nil {
			continue // held: in use now
		}
		var used bool
		err = s.view(func(tx *bolt.Tx) error {
			inUse, err := s.layersInUse(tx)
			used = inUse[c.hex]
			return err
		})
		if err != nil || (used && c.kind != "temp") {
			l.Close()
			if err != nil {
				errs = append(errs, err)
			}
			continue
		}
		switch c.kind {
		case "blob":
			err = s.update(func(*bolt.Tx) error {
				if err := os.Remove(c.path); err != nil {
					return err
				}
				return atomicfile.SyncDir(s.layersDir())
			}, nil)
			if err == nil {
				rep.BlobsRemoved = append(rep.BlobsRemoved, filepath.Join("layers", "sha256", c.hex))
			}
		case "tree":
			// Unmarked first: a removal cut short leaves a plainly
			// incomplete tree.
			if rerr := os.Remove(filepath.Join(c.path, extractedMarker)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				err = rerr
			} else if err = os.RemoveAll(c.path); err == nil {
				rep.TreesRemoved = append(rep.TreesRemoved, filepath.Join("layertrees", c.hex))
			}
		case "temp":
			if err = os.RemoveAll(c.path); err == nil {
				rep.TempRemoved = append(rep.TempRemoved, filepath.Join("layertrees", filepath.Base(c.path)))
			}
		}
		if err != nil {
			errs = append(errs, err)
		} else if !used {
			l.Remove()
		}
		l.Close()
	}
	return errors.Join(errs...)
}

// treeLowers reads a rendered tree's layer list: the layer trees' root
// filesystems, top first; nil for a tree of ACIs.
func (s *Store) treeLowers(treePath string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(treePath, treeLayersFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var lowers []string
	for _, d := range strings.Fields(string(data)) {
		hex, err := layerHex(d)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(treePath, treeLayersFile), err)
		}
		lowers = append(lowers, filepath.Join(s.layerTreePath(hex), aci.RootfsName))
	}
	return topmost(lowers), nil
}

// renderLayered renders the tree of a layered image into tmp: its
// manifest and the list of its layers, top first, whose trees (extracted
// now if missing) are held shared in h until the tree is complete.
func (s *Store) renderLayered(ctx context.Context, img Image, refs []LayerRef, tmp string, h *Held) error {
	diffIDs := make([]string, len(refs))
	for i, ref := range refs {
		if _, err := s.LayerTree(ctx, ref, h, nil); err != nil {
			return err
		}
		diffIDs[len(refs)-1-i] = ref.DiffID
	}
	if err := os.Mkdir(filepath.Join(tmp, aci.RootfsName), 0o755); err != nil {
		return err
	}
	if err := writeManifestIfMissing(tmp, img.Manifest); err != nil {
		return err
	}
	return writeSynced(filepath.Join(tmp, treeLayersFile), []byte(strings.Join(diffIDs, "\n")+"\n"), 0o444)
}

// layeredInChain refuses a chain in which a layered image is a dependency:
// its rootfs is its layer trees, which ACI rendering does not lay down.
func (s *Store) layeredInChain(chain []string) error {
	for _, id := range chain[1:] {
		refs, err := s.layerRefs(id)
		if err != nil {
			return err
		}
		if len(refs) > 0 {
			return fmt.Errorf("image %s is an OCI image, which cannot be a dependency of another image: %w", id, errdefs.ErrInvalid)
		}
	}
	return nil
}

// FlattenLayered writes a layered image into dest as an extracted ACI:
// dest/manifest and dest/rootfs, its layer trees flattened (see
// oci.Flatten). It returns false, having written nothing, for an ACI.
func (s *Store) FlattenLayered(ctx context.Context, id, dest string) (bool, error) {
	img, err := s.Get(id)
	if err != nil {
		return false, err
	}
	var h Held
	defer h.Release()
	lowers, err := s.LayerTrees(ctx, img.ID, &h)
	if err != nil || lowers == nil {
		return false, err
	}
	if err := writeManifestIfMissing(dest, img.Manifest); err != nil {
		return true, err
	}
	return true, oci.Flatten(ctx, lowers, filepath.Join(dest, aci.RootfsName))
}

// Layered says whether an image is a layered (OCI) image.
func (s *Store) Layered(id string) (bool, error) {
	refs, err := s.layerRefs(id)
	return len(refs) > 0, err
}

// CheckRenderable refuses an image whose dependencies include a layered
// (OCI) image, which ACI rendering cannot lay down (see Tree).
func (s *Store) CheckRenderable(id string) error {
	chain, err := aci.DependencyChain(s, id)
	if err != nil {
		return err
	}
	return s.layeredInChain(chain)
}
