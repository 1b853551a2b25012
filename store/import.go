package store

import (
	"bufio"
	"context"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/appc/spec/schema"
	bolt "go.etcd.io/bbolt"

	"github.com/orbit-containers/orbit/aci"
	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/flock"
)

// Import stores an ACI read from r, plain or compressed with gzip, bzip2 or
// xz, and indexes it. The input is decompressed, hashed and validated in one
// pass into a temp file, which is made durable and read-only and renamed to
// its blob path before the index learns about it: a failure or crash at any
// point leaves at most an unreferenced file for GC. Importing an image that
// is already stored refreshes its index entry (import time, the latest
// mark if opts.Latest, the signer if opts.Signer is not Unverified).
func (s *Store) Import(r io.Reader, opts ImportOptions) (Image, error) {
	if err := checkSigner(opts.Signer); err != nil {
		return Image{}, fmt.Errorf("importing image: %w", err)
	}
	for _, l := range opts.Layers {
		if _, err := layerHex(l.Digest); err != nil {
			return Image{}, fmt.Errorf("importing image: %w", err)
		}
		if _, err := layerHex(l.DiffID); err != nil {
			return Image{}, fmt.Errorf("importing image: %w", err)
		}
	}
	tmp, err := s.lockedTemp("import-*.aci")
	if err != nil {
		return Image{}, fmt.Errorf("importing image: %w", err)
	}
	renamed := false
	defer func() {
		if !renamed {
			os.Remove(tmp.Name())
		}
		tmp.Close() // also drops the temp file's lock
	}()

	id, size, manifest, err := s.writeTemp(tmp, r)
	if err != nil {
		return Image{}, fmt.Errorf("importing image: %w", err)
	}
	name := manifest.Name
	manifestJSON, err := json.Marshal(manifest)
	if err != nil {
		return Image{}, fmt.Errorf("importing image %s (%s): %w", id, name, err)
	}
	if err := s.hold(id); err != nil {
		return Image{}, fmt.Errorf("importing image %s (%s): %w", id, name, err)
	}

	var img Image
	err = s.update(func(tx *bolt.Tx) error {
		rec, indexed, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		moved, err := s.placeBlob(tmp.Name(), id)
		if err != nil {
			return err
		}
		renamed = moved
		now := s.now()
		if indexed {
			rec.ImportedAt = now
			rec.Latest = rec.Latest || opts.Latest
			if opts.Signer != Unverified {
				rec.Signer = opts.Signer
			}
		} else {
			rec = record{ImportedAt: now, LastUsed: now, Latest: opts.Latest, Signer: opts.Signer}
		}
		rec.Name = manifest.Name
		rec.Labels = manifest.Labels
		rec.Size = size + max(opts.LayersSize, 0)
		rec.Manifest, rec.Columns = manifestJSON, nil
		if len(opts.Layers) > 0 {
			rec.Layers = opts.Layers
		}
		if err := putRecord(tx, id, rec); err != nil {
			return err
		}
		if err := fillColumns(tx); err != nil {
			return err
		}
		img, err = s.imageOf(rec, id)
		return err
	}, nil)
	if err != nil {
		return Image{}, fmt.Errorf("importing image %s (%s): %w", id, name, err)
	}
	return img, nil
}

// writeTemp decompresses r into tmp while hashing and validating it, and
// makes tmp durable and read-only.
func (s *Store) writeTemp(tmp *os.File, r io.Reader) (id string, size int64, m *schema.ImageManifest, err error) {
	tarStream, err := aci.Decompress(r)
	if err != nil {
		return "", 0, nil, err
	}
	defer tarStream.Close()

	// Hashed on a goroutine of its own: SHA-512 costs about as much as
	// the gunzip, and the two then run on two cores.
	h := aci.NewAsyncHash(sha512.New())
	defer h.Stop()
	bw := bufio.NewWriterSize(tmp, 1<<20)
	n := &countWriter{}
	// Bounded, so that a decompression bomb stops at the limit or before
	// the disk is full, whichever comes first.
	bounded := &boundedWriter{w: bw, limit: s.limits.maxImageSize(), dir: s.tmpDir()}
	tee := io.TeeReader(tarStream, io.MultiWriter(h, bounded, n))
	m, err = aci.Check(tee)
	if err != nil {
		return "", 0, nil, err
	}
	// The tar reader stops at the end-of-archive marker; the padding after
	// it is part of the image too, and of its ID.
	if _, err := io.Copy(io.Discard, tee); err != nil {
		return "", 0, nil, fmt.Errorf("reading image: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return "", 0, nil, fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		return "", 0, nil, fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o444); err != nil {
		return "", 0, nil, err
	}
	return idFromDigest(h.Sum().Sum(nil)), n.n, m, nil
}

// placeBlob renames the finished temp file to id's blob path unless the
// blob is there already, and makes the rename durable. Callers hold the
// index exclusively, so GC cannot take the blob for an orphan in between.
func (s *Store) placeBlob(tmpPath, id string) (moved bool, err error) {
	dst := s.blobPath(id)
	if fi, err := os.Lstat(dst); err == nil && fi.Mode().IsRegular() {
		return false, nil
	}
	dir := filepath.Dir(dst)
	created := false
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return false, err
		}
		created = true
	}
	if err := os.Rename(tmpPath, dst); err != nil {
		return false, err
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return true, err
	}
	if created {
		if err := atomicfile.SyncDir(s.blobsDir()); err != nil {
			return true, err
		}
	}
	return true, nil
}

// lockedTemp creates a temp file in cas/tmp and holds an exclusive lock on
// it for as long as it is open, which tells GC it is not a leftover.
func (s *Store) lockedTemp(pattern string) (*os.File, error) {
	for {
		f, err := os.CreateTemp(s.tmpDir(), pattern)
		if err != nil {
			return nil, err
		}
		l := flock.FromFile(f)
		// GC may have found the new file before it was locked and removed
		// it; then start again with another.
		err = l.Lock(context.Background(), flock.Exclusive) // brief: only gc, checking the file, can hold it
		same := false
		if err == nil {
			same, err = l.Linked()
		}
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, err
		}
		if same {
			return f, nil
		}
		f.Close()
	}
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	return len(p), nil
}

// Touch records that an image was just used, for `orbit image list` and
// `orbit image gc --grace-period`. The record is the modification time of
// the image's lease file, not the index: a run then costs no index write
// transaction (two fdatasyncs and the index's exclusive lock). Losing it in
// a crash loses only a recent "last used" time.
func (s *Store) Touch(ids ...string) error {
	for _, id := range ids {
		if err := checkID(id); err != nil {
			return err
		}
	}
	now := s.now()
	for _, id := range ids {
		if _, err := os.Stat(s.blobPath(id)); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return errNotIndexed(id)
			}
			return err
		}
		path := s.leasePath(id)
		err := os.Chtimes(path, now, now)
		if errors.Is(err, fs.ErrNotExist) {
			var f *os.File
			if f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644); err == nil {
				f.Close()
				err = os.Chtimes(path, now, now)
			}
		}
		if err != nil {
			return fmt.Errorf("image %s: recording its use: %w", id, err)
		}
	}
	return nil
}

// imageOf is rec.image with the last use that Touch recorded folded in.
func (s *Store) imageOf(rec record, id string) (Image, error) {
	img, err := rec.image(id)
	if err != nil {
		return img, err
	}
	if fi, err := os.Stat(s.leasePath(id)); err == nil && fi.ModTime().After(img.LastUsed) {
		img.LastUsed = fi.ModTime()
	}
	return img, nil
}

// errNotIndexed is wrapped when an image ID is valid but not stored.
func errNotIndexed(id string) error {
	return fmt.Errorf("image %s: %w", id, errdefs.ErrNotFound)
}
