package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/flock"
)

// GCReport says what GC did.
type GCReport struct {
	// TreesRemoved are the trees removed: unused, or left incomplete.
	TreesRemoved []string
	// TreesKept are the trees a pod uses or another process holds.
	TreesKept []string
	// TempRemoved are leftovers of interrupted imports and renders.
	TempRemoved []string
	// BlobsRemoved are blobs no index entry pointed to.
	BlobsRemoved []string
	// EntriesRemoved are index entries whose blob had gone.
	EntriesRemoved []string
}

// Remove deletes an image (by full ID) from the index, then its blob, then
// the trees rendered from it that no pod uses (inUse may be nil when there
// are no pods). The index entry goes first, so a crash leaves at most an
// unreferenced blob for GC. A tree that is in use or locked stays until a
// later GC, so a pod made from the image keeps working. An image that a
// command holds a lease on (it is making a pod from it) is not removed:
// that fails with errdefs.ErrBusy. Waiting for another removal to finish
// ends when ctx is done.
func (s *Store) Remove(ctx context.Context, id string, inUse InUseFunc) error {
	_, err := s.remove(ctx, id, inUse, false)
	return err
}

// remove is Remove; when expiring, an image that is leased or that a pod
// uses a tree of is left alone without an error (removed is false).
func (s *Store) remove(ctx context.Context, id string, inUse InUseFunc, expiring bool) (removed bool, err error) {
	if err := checkID(id); err != nil {
		return false, err
	}
	layers := map[string]bool{}
	if img, err := s.Get(id); err == nil {
		refs, _ := s.layerRefs(img.ID)
		for _, l := range refs {
			layers[strings.TrimPrefix(l.Digest, "sha256:")] = true
			layers[strings.TrimPrefix(l.DiffID, "sha256:")] = true
		}
	}
	name, err := s.removeImage(ctx, id, inUse, expiring)
	if err != nil || name == nil {
		return false, err
	}
	trees, err := s.treesUsing(id)
	if err != nil {
		return true, fmt.Errorf("removing image %s: listing its trees: %w", describe(id, *name), err)
	}
	var errs []error
	for _, t := range trees {
		if _, err := s.removeTree(t, inUse); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return true, fmt.Errorf("removed image %s, but not its trees: %w", describe(id, *name), err)
	}
	// Its layers, unless another image or a tree a pod uses lists them.
	if len(layers) > 0 {
		if err := s.gcLayerFiles(&GCReport{}, layers); err != nil {
			return true, fmt.Errorf("removed image %s, but not its layers: %w", describe(id, *name), err)
		}
	}
	return true, nil
}

// removeImage deletes image id's index entry, blob and lease file, holding
// its lease exclusively. Removals take turns (a store-wide lock), so that
// a busy lease means a command holds the image, not another removal. It
// returns the image's name, or nil when expiring and the image is kept.
func (s *Store) removeImage(ctx context.Context, id string, inUse InUseFunc, expiring bool) (*string, error) {
	turn, err := flock.Acquire(ctx, filepath.Join(s.leasesDir(), removalLock), flock.Exclusive)
	if err != nil {
		return nil, fmt.Errorf("removing image %s: %w", id, err)
	}
	defer turn.Close()
	// Taken before pods are looked at: once it is ours, every command that
	// leased the image has recorded in its pod the trees it made from it.
	lease, err := s.takeForRemoval(id)
	if err != nil {
		if expiring && errors.Is(err, errdefs.ErrBusy) {
			return nil, nil
		}
		return nil, fmt.Errorf("removing image %s: %w", id, err)
	}
	defer lease.Close()
	if expiring && inUse != nil {
		used, err := s.usedByPod(id, inUse)
		if err != nil || used {
			return nil, err
		}
	}
	var name string
	err = s.update(func(tx *bolt.Tx) error {
		rec, ok, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return errNotIndexed(id)
		}
		name = string(rec.Name)
		if err := tx.Bucket(bucketImages).Delete([]byte(id)); err != nil {
			return err
		}
		return dropRemotes(tx, id)
	}, func() error {
		return s.removeBlob(id)
	})
	if err != nil {
		return nil, fmt.Errorf("removing image %s: %w", describe(id, name), err)
	}
	if err := lease.Remove(); err != nil {
		return nil, fmt.Errorf("removed image %s, but not its lease file: %w", describe(id, name), err)
	}
	return &name, nil
}

// usedByPod reports whether a pod uses a tree made from image id.
func (s *Store) usedByPod(id string, inUse InUseFunc) (bool, error) {
	trees, err := s.treesUsing(id)
	if err != nil {
		return false, fmt.Errorf("image %s: listing its trees: %w", id, err)
	}
	for _, t := range trees {
		used, err := inUse(t)
		if err != nil {
			return false, fmt.Errorf("image %s: tree %s: checking whether a pod uses it: %w", id, t, err)
		}
		if used {
			return true, nil
		}
	}
	return false, nil
}

func describe(id, name string) string {
	if name == "" {
		return id
	}
	return fmt.Sprintf("%s (%s)", id, name)
}

// removeBlob unlinks a blob; callers hold the index exclusively.
func (s *Store) removeBlob(id string) error {
	path := s.blobPath(id)
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}

// ExpireImages removes the images not used (or imported) within
// gracePeriod, as Remove would, except those that a command holds a lease
// on or that a pod uses a tree of (inUse says which): those are kept. It
// returns the images removed; an image that cannot be removed does not
// stop the others. It stops, with ctx's error, once ctx is done.
func (s *Store) ExpireImages(ctx context.Context, gracePeriod time.Duration, inUse InUseFunc) ([]Image, error) {
	images, err := s.List()
	if err != nil {
		return nil, err
	}
	cutoff := s.now().Add(-gracePeriod)
	var removed []Image
	var errs []error
	for _, img := range images {
		last := img.LastUsed
		if img.ImportedAt.After(last) {
			last = img.ImportedAt
		}
		if !last.Before(cutoff) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return removed, errors.Join(append(errs, err)...)
		}
		ok, err := s.remove(ctx, img.ID, inUse, true)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			removed = append(removed, img)
		}
	}
	return removed, errors.Join(errs...)
}

// GC removes what nothing needs: trees no pod uses (each taken exclusively
// before inUse is asked), trees and temp files left by interrupted renders
// and imports, blobs no index entry points to, and index entries whose blob
// is gone. It is safe to run at any time, alongside any other command,
// and to stop at any point: once ctx is done it stops with ctx's error,
// and a later GC does the rest.
func (s *Store) GC(ctx context.Context, inUse InUseFunc) (GCReport, error) {
	var rep GCReport
	var errs []error
	if err := s.gcTrees(ctx, inUse, &rep); err != nil {
		errs = append(errs, err)
	}
	if err := ctx.Err(); err != nil {
		return rep, errors.Join(append(errs, err)...)
	}
	if err := s.gcLocks(); err != nil {
		errs = append(errs, err)
	}
	if err := s.gcTemp(&rep); err != nil {
		errs = append(errs, err)
	}
	if err := s.gcPartials(&rep); err != nil {
		errs = append(errs, err)
	}
	if err := s.gcBlobs(&rep); err != nil {
		errs = append(errs, err)
	}
	if err := s.gcLayerFiles(&rep, nil); err != nil {
		errs = append(errs, err)
	}
	if images, err := s.List(); err != nil {
		errs = append(errs, err)
	} else {
		indexed := map[string]bool{}
		for _, img := range images {
			indexed[img.ID] = true
		}
		if err := s.gcLeases(indexed); err != nil {
			errs = append(errs, err)
		}
	}
	return rep, errors.Join(errs...)
}

func (s *Store) gcTrees(ctx context.Context, inUse InUseFunc, rep *GCReport) error {
	entries, err := os.ReadDir(s.treesDir())
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if ctx.Err() != nil {
			break // GC says so
		}
		name := e.Name()
		switch {
		case validTreeID(name):
			removed, err := s.removeTree(name, inUse)
			if err != nil {
				errs = append(errs, err)
			} else if removed {
				rep.TreesRemoved = append(rep.TreesRemoved, name)
			} else {
				rep.TreesKept = append(rep.TreesKept, name)
			}
		case strings.HasPrefix(name, renderPrefix):
			removed, err := s.gcRender(name)
			if err != nil {
				errs = append(errs, err)
			} else if removed {
				rep.TempRemoved = append(rep.TempRemoved, filepath.Join("trees", name))
			}
		}
	}
	return errors.Join(errs...)
}

// gcRender removes a render temp dir unless its tree is being rendered.
func (s *Store) gcRender(name string) (bool, error) {
	rest := strings.TrimPrefix(name, renderPrefix)
	n := len(treePrefix) + idHexLen
	if len(rest) <= n || rest[n] != '-' || !validTreeID(rest[:n]) {
		return false, nil
	}
	treeID := rest[:n]
	l, err := flock.TryAcquire(s.treeLockPath(treeID), flock.Exclusive)
	if err != nil {
		return false, nil // busy: being rendered now
	}
	defer l.Close()
	if err := os.RemoveAll(filepath.Join(s.treesDir(), name)); err != nil {
		return false, err
	}
	return true, nil
}

// gcLocks removes the lock files of trees that do not exist.
func (s *Store) gcLocks() error {
	entries, err := os.ReadDir(s.locksDir())
	if err != nil {
		return err
	}
	for _, e := range entries {
		treeID, ok := strings.CutSuffix(e.Name(), ".lock")
		if !ok || !validTreeID(treeID) {
			continue
		}
		if _, err := os.Lstat(s.treePath(treeID)); err == nil {
			continue
		}
		l, err := flock.TryAcquire(s.treeLockPath(treeID), flock.Exclusive)
		if err != nil {
			continue
		}
		// Holding the lock exclusively, nobody renders the tree now.
		if _, err := os.Lstat(s.treePath(treeID)); errors.Is(err, os.ErrNotExist) {
			l.Remove()
		}
		l.Close()
	}
	return nil
}

// gcTemp removes temp files nobody holds and nobody touched lately.
func (s *Store) gcTemp(rep *GCReport) error {
	entries, err := os.ReadDir(s.tmpDir())
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || s.now().Sub(info.ModTime()) < s.tmpMinAge {
			continue
		}
		path := filepath.Join(s.tmpDir(), e.Name())
		l, ok, err := lockExisting(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		if err := os.RemoveAll(path); err != nil {
			errs = append(errs, err)
		} else {
			rep.TempRemoved = append(rep.TempRemoved, filepath.Join("tmp", e.Name()))
		}
		l.Close()
	}
	return errors.Join(errs...)
}

// gcBlobs reconciles blobs and index under the index's exclusive lock, the
// lock under which imports rename blobs into place.
func (s *Store) gcBlobs(rep *GCReport) error {
	var orphans []string
	return s.update(func(tx *bolt.Tx) error {
		orphans = orphans[:0]
		onDisk := map[string]bool{}
		dirs, err := os.ReadDir(s.blobsDir())
		if err != nil {
			return err
		}
		for _, d := range dirs {
			files, err := os.ReadDir(filepath.Join(s.blobsDir(), d.Name()))
			if err != nil {
				continue
			}
			for _, f := range files {
				id := idPrefix + f.Name()
				if ValidID(id) && f.Type().IsRegular() && f.Name()[:2] == d.Name() {
					onDisk[id] = true
				} else {
					orphans = append(orphans, filepath.Join(d.Name(), f.Name()))
				}
			}
		}
		indexed := map[string]bool{}
		var dangling []string
		err = forEachRecord(tx, func(id string, _ record) error {
			indexed[id] = true
			if !onDisk[id] {
				dangling = append(dangling, id)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for id := range onDisk {
			if !indexed[id] {
				orphans = append(orphans, filepath.Join(id[len(idPrefix):len(idPrefix)+2], id[len(idPrefix):]))
			}
		}
		for _, id := range dangling {
			if err := tx.Bucket(bucketImages).Delete([]byte(id)); err != nil {
				return err
			}
			if err := dropRemotes(tx, id); err != nil {
				return err
			}
		}
		rep.EntriesRemoved = dangling
		return nil
	}, func() error {
		var errs []error
		for _, rel := range orphans {
			path := filepath.Join(s.blobsDir(), rel)
			if err := os.RemoveAll(path); err != nil {
				errs = append(errs, err)
				continue
			}
			if id := idPrefix + filepath.Base(rel); ValidID(id) {
				rel = id
			}
			rep.BlobsRemoved = append(rep.BlobsRemoved, rel)
		}
		return errors.Join(errs...)
	})
}
