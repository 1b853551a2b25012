package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/orbit-containers/orbit/aci/oci"
	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
)

// The index is a bbolt database that every orbit process opens for one
// operation and closes again. bbolt takes flock(2) on the file for as long
// as it is open: exclusive for a read-write open, shared for a read-only
// one. So a read-write open is also the store-wide lock under which blobs
// are renamed into place and removed, which keeps the blobs and the index
// consistent across processes.
var (
	bucketImages  = []byte("images")
	bucketRemotes = []byte("remotes")
)

// record is the JSON value of the images bucket.
type record struct {
	Name       types.ACIdentifier `json:"name"`
	Labels     types.Labels       `json:"labels,omitempty"`
	Size       int64              `json:"size"`
	ImportedAt time.Time          `json:"importTime"`
	LastUsed   time.Time          `json:"lastUsed"`
	Latest     bool               `json:"latest"`
	Signer     string             `json:"signer,omitempty"`
	Manifest   json.RawMessage    `json:"manifest"`
	// Layers are a layered (OCI) image's layers, lowest first; its rootfs
	// is their trees, not its blob's (empty) rootfs.
	Layers []LayerRef `json:"layers,omitempty"`
	// Columns are what a listing shows that only the manifest holds,
	// so that one need not decode every manifest (ListBrief). Records
	// written before it have none, and get them when next written or when
	// an import fills them in (fillColumns).
	Columns *recordColumns `json:"columns,omitempty"`
}

// recordColumns are the parts of the manifest a listing shows.
type recordColumns struct {
	// OCIName is ociName of the manifest.
	OCIName string `json:"ociName,omitempty"`
}

// columnsOf works out a record's columns from its manifest.
func columnsOf(manifest json.RawMessage) (*recordColumns, error) {
	var m struct {
		Annotations types.Annotations `json:"annotations"`
	}
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, err
	}
	return &recordColumns{OCIName: ociName(m.Annotations)}, nil
}

// ociName is an OCI image's registry name and tag, from the
// appc.io/docker annotations its conversion set
// (127.0.0.1:5000/demo/app:v1), or "" for any other image.
func ociName(a types.Annotations) string {
	reg, ok1 := a.Get(oci.AnnotationRegistry)
	repo, ok2 := a.Get(oci.AnnotationRepository)
	if !ok1 || !ok2 || reg == "" || repo == "" {
		return ""
	}
	n := reg + "/" + repo
	if tag, ok := a.Get(oci.AnnotationTag); ok && tag != "" {
		n += ":" + tag
	} else if d, ok := a.Get(oci.AnnotationManifestHash); ok && d != "" {
		n += "@" + d
	}
	return n
}

// briefRecord is a record as a listing reads it: no manifest or layers,
// and the name and labels as plain strings, not checked again (they were
// when the image was imported).
type briefRecord struct {
	Name   string `json:"name"`
	Labels []struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	} `json:"labels,omitempty"`
	Size       int64          `json:"size"`
	ImportedAt time.Time      `json:"importTime"`
	LastUsed   time.Time      `json:"lastUsed"`
	Latest     bool           `json:"latest"`
	Signer     string         `json:"signer,omitempty"`
	Columns    *recordColumns `json:"columns,omitempty"`
}

// briefImage decodes an index entry as a listing shows it (Image.Manifest
// is nil). An entry written before records had columns is decoded whole.
func briefImage(id string, v []byte) (Image, error) {
	var r briefRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return Image{}, fmt.Errorf("image %s: bad index entry: %w: %v", id, errdefs.ErrInvalid, err)
	}
	if r.Columns == nil {
		var rec record
		if err := json.Unmarshal(v, &rec); err != nil {
			return Image{}, fmt.Errorf("image %s: bad index entry: %w: %v", id, errdefs.ErrInvalid, err)
		}
		img, err := rec.image(id)
		img.Manifest = nil
		return img, err
	}
	img := Image{
		ID: id, Name: types.ACIdentifier(r.Name), Size: r.Size, ImportedAt: r.ImportedAt, LastUsed: r.LastUsed,
		Latest: r.Latest, Signer: r.Signer, OCIName: r.Columns.OCIName,
	}
	for _, l := range r.Labels {
		img.Labels = append(img.Labels, types.Label{Name: types.ACIdentifier(l.Name), Value: l.Value})
	}
	return img, nil
}

func (r *record) image(id string) (Image, error) {
	var m schema.ImageManifest
	if err := json.Unmarshal(r.Manifest, &m); err != nil {
		return Image{}, fmt.Errorf("image %s: index holds a bad manifest: %w: %v", id, errdefs.ErrInvalid, err)
	}
	return Image{
		ID:         id,
		Name:       r.Name,
		Labels:     r.Labels,
		Size:       r.Size,
		ImportedAt: r.ImportedAt,
		LastUsed:   r.LastUsed,
		Latest:     r.Latest,
		Signer:     r.Signer,
		Manifest:   &m,
		OCIName:    ociName(m.Annotations),
	}, nil
}

// initIndex creates index.db with its buckets, recording format, unless it
// exists. It is built under a temp name and linked into place, so no
// process ever sees a half-initialised database.
func (s *Store) initIndex(format int) error {
	if _, err := os.Stat(s.indexPath()); err == nil {
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := os.CreateTemp(s.tmpDir(), "index-*.db")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(0o644)
	f.Close()
	defer os.Remove(tmp)
	if err != nil {
		return err
	}
	db, err := bolt.Open(tmp, 0o644, &bolt.Options{Timeout: s.dbTimeout})
	if err != nil {
		return fmt.Errorf("creating index: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketImages, bucketRemotes} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return writeFormat(tx, format)
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("creating index: %w", err)
	}
	// link fails if another process won the race; its index is as good.
	if err := os.Link(tmp, s.indexPath()); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("creating index: %w", err)
	}
	return atomicfile.SyncDir(s.dir)
}

func (s *Store) openDB(readOnly bool) (*bolt.DB, error) {
	db, err := bolt.Open(s.indexPath(), 0o644, &bolt.Options{Timeout: s.dbTimeout, ReadOnly: readOnly})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("image index %s: another orbit process holds it: %w", s.indexPath(), errdefs.ErrBusy)
		}
		return nil, fmt.Errorf("image index %s: %w", s.indexPath(), err)
	}
	return db, nil
}

// view runs fn in a read-only transaction.
func (s *Store) view(fn func(tx *bolt.Tx) error) error {
	db, err := s.openDB(true)
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(fn)
}

// update runs fn in a read-write transaction while holding the index
// exclusively; after commits and before the index is closed, after runs
// (if not nil) still under that lock.
func (s *Store) update(fn func(tx *bolt.Tx) error, after func() error) error {
	db, err := s.openDB(false)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		return err
	}
	if after != nil {
		if err := after(); err != nil {
			return err
		}
	}
	return db.Close()
}

// getRecord reads the record of a full image ID; ok is false when the
// image is not indexed.
func getRecord(tx *bolt.Tx, id string) (rec record, ok bool, err error) {
	b := tx.Bucket(bucketImages)
	if b == nil {
		return rec, false, nil
	}
	v := b.Get([]byte(id))
	if v == nil {
		return rec, false, nil
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, false, fmt.Errorf("image %s: bad index entry: %w: %v", id, errdefs.ErrInvalid, err)
	}
	return rec, true, nil
}

func putRecord(tx *bolt.Tx, id string, rec record) error {
	b, err := tx.CreateBucketIfNotExists(bucketImages)
	if err != nil {
		return err
	}
	if rec.Columns == nil {
		// Left out if the manifest does not decode: a listing decodes it
		// then, and reports it.
		rec.Columns, _ = columnsOf(rec.Manifest)
	}
	v, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("image %s: %w", id, err)
	}
	return b.Put([]byte(id), v)
}

// fillColumns gives every record written before records had columns its
// columns: each import does it, so a store made by an older orbit lists
// as fast as a new one from its next import on. A record whose manifest
// does not decode is left as it is, for the listing to report.
func fillColumns(tx *bolt.Tx) error {
	b := tx.Bucket(bucketImages)
	if b == nil {
		return nil
	}
	var ids []string
	if err := b.ForEach(func(k, v []byte) error {
		if !bytes.Contains(v, []byte(`"columns":`)) {
			ids = append(ids, string(k))
		}
		return nil
	}); err != nil {
		return err
	}
	for _, id := range ids {
		rec, ok, err := getRecord(tx, id)
		if err != nil || !ok {
			continue
		}
		if rec.Columns, err = columnsOf(rec.Manifest); err != nil {
			continue
		}
		if err := putRecord(tx, id, rec); err != nil {
			return err
		}
	}
	return nil
}

// forEachRecord calls fn for every indexed image, in ID order.
func forEachRecord(tx *bolt.Tx, fn func(id string, rec record) error) error {
	return forEachRecordHolding(tx, nil, fn)
}

// forEachRecordHolding is forEachRecord for the records whose encoding
// holds needle (all of them when needle is nil): a look-up by name skips
// the JSON decoding of every other image's record, which is most of the
// cost of a look-up in a store of many images.
func forEachRecordHolding(tx *bolt.Tx, needle []byte, fn func(id string, rec record) error) error {
	b := tx.Bucket(bucketImages)
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		if needle != nil && !bytes.Contains(v, needle) {
			return nil
		}
		var rec record
		if err := json.Unmarshal(v, &rec); err != nil {
			return fmt.Errorf("image %s: bad index entry: %w: %v", k, errdefs.ErrInvalid, err)
		}
		return fn(string(k), rec)
	})
}
