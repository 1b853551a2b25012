package store

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/appc/spec/schema"
	bolt "go.etcd.io/bbolt"

	"github.com/orbit-containers/orbit/aci"
	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/flock"
	"github.com/orbit-containers/orbit/internal/poll"
)

const (
	// renderedMarker is written last into a complete tree; it lists the
	// image IDs the tree was rendered from, one a line.
	renderedMarker = ".rendered"
	// renderPrefix names a tree being rendered: .render-<treeID>-<random>.
	renderPrefix = ".render-"
	// treeAttempts bounds how often Tree starts again when GC removes the
	// tree between two of its steps.
	treeAttempts = 10
)

// Tree is a rendered image: Path holds the image's manifest and rootfs/,
// the image's root filesystem with its dependencies' laid under it. The
// tree stays locked shared, so no GC can remove it, until Release.
type Tree struct {
	ID       string
	Path     string
	Chain    []string // the image IDs it is made of, the image first
	Manifest *schema.ImageManifest
	// Lowers are the directories whose union is the rootfs, top first, as
	// overlayfs takes lower directories: Path/rootfs for a tree of ACIs,
	// the layer trees of a layered (OCI) image (Layered), whose overlayfs
	// whiteouts a copy must apply.
	Lowers  []string
	Layered bool

	lock *flock.Lock
}

// Release drops the tree's shared lock. Before calling it, a pod that uses
// the tree must have recorded so where the InUseFunc passed to Remove and GC
// will find it.
func (t *Tree) Release() error {
	if t == nil {
		return nil
	}
	return t.lock.Close()
}

// TreeID names the tree rendered from an ordered list of image IDs.
func TreeID(chain []string) string {
	sum := sha512.Sum512([]byte(strings.Join(chain, "\n")))
	return treePrefix + hex.EncodeToString(sum[:])
}

// Tree returns the rendered tree of an image and its dependencies,
// rendering it first if no process has yet. It comes back locked shared;
// the caller must Release it. Any number of processes may ask for the same
// tree at once: one renders it under the tree's exclusive lock, the others
// wait and reuse it. Waiting for another process's lock ends when ctx is
// done, with ctx's error.
func (s *Store) Tree(ctx context.Context, imageID string) (*Tree, error) {
	img, err := s.Get(imageID)
	if err != nil {
		return nil, err
	}
	chain, err := aci.DependencyChain(s, img.ID)
	if err != nil {
		return nil, fmt.Errorf("image %s (%s): resolving dependencies: %w", img.ID, img.Name, err)
	}
	treeID := TreeID(chain)
	for range treeAttempts {
		t, err := s.lockedTree(ctx, img, treeID, chain)
		if err != nil {
			return nil, fmt.Errorf("image %s (%s): tree %s: %w", img.ID, img.Name, treeID, err)
		}
		if t != nil {
			return t, nil
		}
	}
	return nil, fmt.Errorf("image %s (%s): tree %s keeps being removed while rendered: %w", img.ID, img.Name, treeID, errdefs.ErrBusy)
}

// lockedTree makes one attempt at Tree. It returns nil, nil when the lock
// file or the tree went away under it and the caller should start again.
//
// It never waits for the exclusive lock while holding the shared one: other
// callers hold the shared lock for as long as they like once the tree is
// rendered, and waiting on them with the shared lock held could deadlock.
func (s *Store) lockedTree(ctx context.Context, img Image, treeID string, chain []string) (*Tree, error) {
	l, err := flock.Acquire(ctx, s.treeLockPath(treeID), flock.Shared)
	if err != nil {
		return nil, err
	}
	t, err := s.readTree(treeID, chain)
	if err != nil || t != nil {
		return s.hand(t, l, err)
	}
	l.Close()

	l, err = s.lockToRender(ctx, treeID)
	if err != nil || l == nil {
		return nil, err
	}
	t, err = s.readTree(treeID, chain)
	if err != nil {
		l.Close()
		return nil, err
	}
	if t == nil {
		if err := s.render(ctx, img, treeID, chain); err != nil {
			l.Close()
			return nil, err
		}
	}
	// flock converts by dropping and retaking, and GC may take the tree
	// away in between; then start again.
	err = l.Lock(ctx, flock.Shared)
	same := false
	if err == nil {
		same, err = l.Linked()
	}
	if err != nil || !same {
		l.Close()
		return nil, err
	}
	t, err = s.readTree(treeID, chain)
	return s.hand(t, l, err)
}

// hand gives the caller t with l held, or drops l if there is no tree.
func (s *Store) hand(t *Tree, l *flock.Lock, err error) (*Tree, error) {
	if err != nil || t == nil {
		l.Close()
		return nil, err
	}
	t.lock = l
	return t, nil
}

// lockToRender takes tree treeID's lock exclusively, holding nothing while
// it waits, until ctx is done. It returns nil, nil as soon as it sees that
// another process finished rendering the tree meanwhile.
func (s *Store) lockToRender(ctx context.Context, treeID string) (*flock.Lock, error) {
	var l *flock.Lock
	err := poll.WhileBusy(ctx, func() (err error) {
		l, err = flock.TryAcquire(s.treeLockPath(treeID), flock.Exclusive)
		if errors.Is(err, errdefs.ErrBusy) {
			if _, serr := os.Lstat(filepath.Join(s.treePath(treeID), renderedMarker)); serr == nil {
				return nil // rendered meanwhile: l is nil
			}
		}
		return err
	})
	if err != nil && errors.Is(err, ctx.Err()) {
		return nil, fmt.Errorf("waiting for the lock on %s: %w", s.treeLockPath(treeID), err)
	}
	return l, err
}

// readTree returns the complete tree treeID, or nil if it is not there.
func (s *Store) readTree(treeID string, chain []string) (*Tree, error) {
	path := s.treePath(treeID)
	got, err := readMarker(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !slices.Equal(got, chain) {
		return nil, fmt.Errorf("%s names images %v, not %v: %w", filepath.Join(path, renderedMarker), got, chain, errdefs.ErrInvalid)
	}
	data, err := os.ReadFile(filepath.Join(path, aci.ManifestName))
	if err != nil {
		return nil, err
	}
	var m schema.ImageManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", filepath.Join(path, aci.ManifestName), errdefs.ErrInvalid, err)
	}
	lowers, err := s.treeLowers(path)
	if err != nil {
		return nil, err
	}
	layered := lowers != nil
	if !layered {
		lowers = []string{filepath.Join(path, aci.RootfsName)}
	}
	return &Tree{ID: treeID, Path: path, Chain: chain, Manifest: &m, Lowers: lowers, Layered: layered}, nil
}

// chainSize is the total uncompressed size of the images in chain.
func (s *Store) chainSize(chain []string) (int64, error) {
	var total int64
	err := s.view(func(tx *bolt.Tx) error {
		for _, id := range chain {
			rec, ok, err := getRecord(tx, id)
			if err != nil {
				return err
			}
			if !ok {
				return errNotIndexed(id)
			}
			total += rec.Size
		}
		return nil
	})
	return total, err
}

// readMarker reads the image IDs from a tree's .rendered file.
func readMarker(treePath string) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(treePath, renderedMarker))
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(data)), nil
}

// render builds tree treeID into a temp dir beside it and renames it into
// place once complete. The caller holds the tree's lock exclusively.
func (s *Store) render(ctx context.Context, img Image, treeID string, chain []string) error {
	if err := s.layeredInChain(chain); err != nil {
		return err
	}
	refs, err := s.layerRefs(img.ID)
	if err != nil {
		return err
	}
	// Checked before anything is written: the tree is at most as large as
	// the images it is made of.
	total, err := s.chainSize(chain)
	if len(refs) > 0 {
		total = 0 // its layers are extracted already, or now, once
	}
	if err != nil {
		return err
	}
	if limit := s.limits.maxImageSize(); total > limit {
		return errTooLarge(fmt.Sprintf("the image with its dependencies (%s)", FormatSize(total)), limit)
	}
	if err := checkFree(s.treesDir(), total); err != nil {
		return err
	}
	var held Held
	defer held.Release() // the layers: once the tree, which lists them, is complete
	return buildDir(s.treesDir(), renderPrefix+treeID+"-", s.treePath(treeID), renderedMarker, func(tmp string) ([]byte, error) {
		if len(refs) > 0 {
			if err := s.renderLayered(ctx, img, refs, tmp, &held); err != nil {
				return nil, fmt.Errorf("rendering: %w", err)
			}
		} else {
			// The blobs were verified when they entered the store (see "The
			// store" in Documentation/design.md): not hashed again here.
			got, err := aci.Render(s, img.ID, tmp, aci.RenderOptions{})
			if err != nil {
				return nil, fmt.Errorf("rendering: %w", err)
			}
			if !slices.Equal(got, chain) {
				return nil, fmt.Errorf("the images it depends on changed while it was rendered: %w", errdefs.ErrBusy)
			}
		}
		if err := writeManifestIfMissing(tmp, img.Manifest); err != nil {
			return nil, err
		}
		return []byte(strings.Join(chain, "\n") + "\n"), nil
	})
}

// buildDir makes the store directory final anew, beside its siblings in
// parent: it removes what a crash left at final (a directory without its
// marker), lets fill write a temporary directory named with prefix, makes
// that durable with the marker holding what fill returned, and renames it
// into place. A failure leaves nothing behind.
func buildDir(parent, prefix, final, marker string, fill func(tmp string) ([]byte, error)) error {
	if err := os.RemoveAll(final); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(parent, prefix)
	if err != nil {
		return err
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	content, err := fill(tmp)
	if err != nil {
		return err
	}
	if err := syncFS(tmp); err != nil {
		return err
	}
	if err := writeSynced(filepath.Join(tmp, marker), content, 0o444); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	done = true
	return atomicfile.SyncDir(parent)
}

func writeManifestIfMissing(dir string, m *schema.ImageManifest) error {
	path := filepath.Join(dir, aci.ManifestName)
	if _, err := os.Lstat(path); err == nil {
		return nil
	}
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return writeSynced(path, data, 0o644)
}

// writeSynced writes a new file and fsyncs it.
func writeSynced(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// treesUsing lists the complete trees that image id is part of.
func (s *Store) treesUsing(id string) ([]string, error) {
	entries, err := os.ReadDir(s.treesDir())
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if !validTreeID(e.Name()) {
			continue
		}
		chain, err := readMarker(s.treePath(e.Name()))
		if err != nil {
			continue // incomplete or going away: GC's business
		}
		if slices.Contains(chain, id) {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// removeTree deletes a complete or incomplete tree unless someone holds its
// lock or, for a complete tree, inUse says a pod uses it.
func (s *Store) removeTree(treeID string, inUse InUseFunc) (removed bool, err error) {
	l, err := flock.TryAcquire(s.treeLockPath(treeID), flock.Exclusive)
	if errors.Is(err, errdefs.ErrBusy) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer l.Close()
	path := s.treePath(treeID)
	_, err = readMarker(path)
	complete := err == nil
	if complete && inUse != nil {
		used, err := inUse(treeID)
		if err != nil {
			return false, fmt.Errorf("tree %s: checking whether a pod uses it: %w", treeID, err)
		}
		if used {
			return false, nil
		}
	}
	if complete {
		// Unmarked first: if removal stops half way, what is left is
		// plainly incomplete.
		if err := os.Remove(filepath.Join(path, renderedMarker)); err != nil {
			return false, err
		}
		if err := atomicfile.SyncDir(path); err != nil {
			return false, err
		}
	}
	if err := os.RemoveAll(path); err != nil {
		return false, fmt.Errorf("tree %s: %w", treeID, err)
	}
	if err := atomicfile.SyncDir(s.treesDir()); err != nil {
		return true, err
	}
	return true, l.Remove()
}
