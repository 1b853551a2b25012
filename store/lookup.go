package store

import (
	"bytes"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/appc/spec/discovery"
	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	bolt "go.etcd.io/bbolt"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// Get returns the image with the given full ID or unique ID prefix
// ("sha512-" and at least two hex digits). It fails with errdefs.ErrNotFound
// when nothing matches and errdefs.ErrAmbiguous when several images do.
func (s *Store) Get(idOrPrefix string) (Image, error) {
	prefix := strings.ToLower(idOrPrefix)
	hexPart, ok := strings.CutPrefix(prefix, idPrefix)
	if !ok || len(hexPart) < minPrefixHex || len(hexPart) > idHexLen || !isLowerHex(hexPart, 0) {
		return Image{}, fmt.Errorf("image ID %q: want %s and %d to %d hex digits: %w", idOrPrefix, idPrefix, minPrefixHex, idHexLen, errdefs.ErrInvalid)
	}
	var matches []string
	var found record
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImages)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, _ := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, _ = c.Next() {
			matches = append(matches, string(k))
		}
		if len(matches) == 1 {
			rec, _, err := getRecord(tx, matches[0])
			found = rec
			return err
		}
		return nil
	})
	if err != nil {
		return Image{}, err
	}
	switch len(matches) {
	case 0:
		return Image{}, fmt.Errorf("image %s: %w", idOrPrefix, errdefs.ErrNotFound)
	case 1:
		if indexed, err := s.lease(matches[0]); err != nil {
			return Image{}, err
		} else if !indexed {
			return Image{}, fmt.Errorf("image %s: %w", idOrPrefix, errdefs.ErrNotFound)
		}
		return s.imageOf(found, matches[0])
	}
	return Image{}, fmt.Errorf("image ID prefix %s matches %d images: %w", idOrPrefix, len(matches), errdefs.ErrAmbiguous)
}

// FindByName returns the most recently imported image called name whose
// labels include all of labels. A version label of "latest" matches the
// images imported as the latest of their name, or, when there are none,
// any version.
func (s *Store) FindByName(name types.ACIdentifier, labels types.Labels) (Image, error) {
	for range leaseAttempts {
		img, err := s.findByName(name, labels)
		if err != nil {
			return Image{}, err
		}
		indexed, err := s.lease(img.ID)
		if err != nil {
			return Image{}, err
		}
		if indexed {
			return img, nil
		}
		// Removed before it could be leased: look again.
	}
	return Image{}, fmt.Errorf("image %s keeps being removed while it is looked up: %w", FormatName(name, labels), errdefs.ErrBusy)
}

func (s *Store) findByName(name types.ACIdentifier, labels types.Labels) (Image, error) {
	wantLatest := false
	var want types.Labels
	for _, l := range labels {
		if l.Name == "version" && l.Value == "latest" {
			wantLatest = true
			continue
		}
		want = append(want, l)
	}
	var best, bestLatest *candidate
	// A record holds its name as putRecord's encoding/json wrote it.
	quoted, err := json.Marshal(string(name))
	if err != nil {
		return Image{}, err
	}
	needle := append([]byte(`"name":`), quoted...)
	err = s.view(func(tx *bolt.Tx) error {
		return forEachRecordHolding(tx, needle, func(id string, rec record) error {
			if rec.Name != name || !hasLabels(rec.Labels, want) {
				return nil
			}
			c := &candidate{id: id, rec: rec}
			best = c.newer(best)
			if rec.Latest {
				bestLatest = c.newer(bestLatest)
			}
			return nil
		})
	})
	if err != nil {
		return Image{}, err
	}
	if wantLatest && bestLatest != nil {
		best = bestLatest
	}
	if best == nil {
		return Image{}, fmt.Errorf("image %s: %w", FormatName(name, labels), errdefs.ErrNotFound)
	}
	return s.imageOf(best.rec, best.id)
}

type candidate struct {
	id  string
	rec record
}

// newer returns whichever of c and o was imported last (ties go to the
// larger ID, so the answer does not depend on iteration order).
func (c *candidate) newer(o *candidate) *candidate {
	if o == nil {
		return c
	}
	if c.rec.ImportedAt.Equal(o.rec.ImportedAt) {
		if c.id > o.id {
			return c
		}
		return o
	}
	if c.rec.ImportedAt.After(o.rec.ImportedAt) {
		return c
	}
	return o
}

func hasLabels(have, want types.Labels) bool {
	for _, w := range want {
		v, ok := have.Get(w.Name.String())
		if !ok || v != w.Value {
			return false
		}
	}
	return true
}

// List returns every stored image, oldest import first.
func (s *Store) List() ([]Image, error) {
	var images []Image
	err := s.view(func(tx *bolt.Tx) error {
		return forEachRecord(tx, func(id string, rec record) error {
			img, err := s.imageOf(rec, id)
			if err != nil {
				return err
			}
			images = append(images, img)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(images, func(i, j int) bool { return images[i].ImportedAt.Before(images[j].ImportedAt) })
	return images, nil
}

// ListBrief returns every image as List does, oldest first, but without
// its manifest (Image.Manifest is nil): what `image list` shows comes from
// the index records alone, so a store of many images lists without
// decoding every manifest.
func (s *Store) ListBrief() ([]Image, error) {
	used := s.leaseTimes()
	var images []Image
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImages)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			img, err := briefImage(string(k), v)
			if err != nil {
				return err
			}
			if t, ok := used[img.ID]; ok && t.After(img.LastUsed) {
				img.LastUsed = t
			}
			images = append(images, img)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return byImportTime(images), nil
}

// leaseTimes is the last use that Touch recorded of each image that has
// a lease file (see imageOf): one directory read, and a stat of each lease
// file only, rather than a stat per image.
func (s *Store) leaseTimes() map[string]time.Time {
	ents, err := os.ReadDir(s.leasesDir())
	if err != nil {
		return nil
	}
	out := make(map[string]time.Time, len(ents))
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), idPrefix) {
			continue
		}
		if fi, err := e.Info(); err == nil {
			out[e.Name()] = fi.ModTime()
		}
	}
	return out
}

// Resolve finds an image by what a user typed: an image ID or ID prefix
// ("sha512-..."), or a name with optional version and labels
// ("example.com/app:1.0,os=linux").
func (s *Store) Resolve(ref string) (Image, error) {
	if LooksLikeID(ref) {
		return s.Get(ref)
	}
	name, labels, err := ParseName(ref)
	if err != nil {
		return Image{}, err
	}
	return s.FindByName(name, labels)
}

// ParseName splits "name[:version][,label=value...]" into the image name
// and labels, the version becoming the "version" label.
func ParseName(ref string) (types.ACIdentifier, types.Labels, error) {
	app, err := discovery.NewAppFromString(ref)
	if err != nil {
		return "", nil, fmt.Errorf("image name %q: %w: %v", ref, errdefs.ErrInvalid, err)
	}
	labels, err := types.LabelsFromMap(app.Labels)
	if err != nil {
		return "", nil, fmt.Errorf("image name %q: %w: %v", ref, errdefs.ErrInvalid, err)
	}
	return app.Name, labels, nil
}

// FormatName writes a name and labels back the way users type them:
// name:version,label=value.
func FormatName(name types.ACIdentifier, labels types.Labels) string {
	var b strings.Builder
	b.WriteString(name.String())
	if v, ok := labels.Get("version"); ok {
		b.WriteString(":" + v)
	}
	for _, l := range labels {
		if l.Name != "version" {
			fmt.Fprintf(&b, ",%s=%s", l.Name, l.Value)
		}
	}
	return b.String()
}

// Manifest returns the manifest of a stored image, by full ID.
func (s *Store) Manifest(id string) (*schema.ImageManifest, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	var img Image
	err := s.view(func(tx *bolt.Tx) error {
		rec, ok, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		if !ok {
			return errNotIndexed(id)
		}
		img, err = s.imageOf(rec, id)
		return err
	})
	if err != nil {
		return nil, err
	}
	if indexed, err := s.lease(id); err != nil {
		return nil, err
	} else if !indexed {
		return nil, errNotIndexed(id)
	}
	return img.Manifest, nil
}

// ResolveName returns the ID of the image FindByName picks, resolving a
// dependency given by name.
func (s *Store) ResolveName(name types.ACIdentifier, labels types.Labels) (string, error) {
	img, err := s.FindByName(name, labels)
	if err != nil {
		return "", err
	}
	return img.ID, nil
}

// OpenBlob opens the stored, uncompressed ACI of a full image ID.
func (s *Store) OpenBlob(id string) (io.ReadCloser, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	f, err := os.Open(s.blobPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNotIndexed(id)
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", id, err)
	}
	return f, nil
}

// Verify hashes a stored image again and fails with errdefs.ErrInvalid if
// its content no longer matches its ID.
func (s *Store) Verify(id string) error {
	rc, err := s.OpenBlob(id)
	if err != nil {
		return err
	}
	defer rc.Close()
	h := sha512.New()
	if _, err := io.Copy(h, rc); err != nil {
		return fmt.Errorf("image %s: reading blob: %w", id, err)
	}
	if got := idFromDigest(h.Sum(nil)); got != id {
		return fmt.Errorf("image %s: stored blob is corrupt (its hash is %s): %w", id, ShortID(got), errdefs.ErrInvalid)
	}
	return nil
}

// byImportTime sorts images by import time, stably, moving each Image (a
// large struct) once rather than at every swap.
func byImportTime(images []Image) []Image {
	order := make([]int, len(images))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(i, j int) bool { return images[order[i]].ImportedAt.Before(images[order[j]].ImportedAt) })
	out := make([]Image, len(images))
	for i, k := range order {
		out[i] = images[k]
	}
	return out
}
