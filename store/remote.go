package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// Remote records what a fetch URL gave last time, so a later fetch can
// reuse the stored image while the server's cache lifetime lasts, or ask
// the server with the ETag whether it changed.
type Remote struct {
	URL          string
	ImageID      string
	ETag         string
	MaxAge       time.Duration
	DownloadedAt time.Time
}

// remoteRecord is the JSON value of the remotes bucket.
type remoteRecord struct {
	ImageID      string    `json:"imageID"`
	ETag         string    `json:"etag,omitempty"`
	MaxAgeSecs   int64     `json:"maxAge,omitempty"`
	DownloadedAt time.Time `json:"downloadTime"`
}

// GetRemote returns what was recorded for url, or errdefs.ErrNotFound.
func (s *Store) GetRemote(url string) (Remote, error) {
	var rr remoteRecord
	found := false
	err := s.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRemotes)
		if b == nil {
			return nil
		}
		v := b.Get([]byte(url))
		if v == nil {
			return nil
		}
		found = true
		if err := json.Unmarshal(v, &rr); err != nil {
			return fmt.Errorf("remote %s: bad index entry: %w: %v", url, errdefs.ErrInvalid, err)
		}
		return nil
	})
	if err != nil {
		return Remote{}, err
	}
	if !found {
		return Remote{}, fmt.Errorf("remote %s: %w", url, errdefs.ErrNotFound)
	}
	return Remote{
		URL:          url,
		ImageID:      rr.ImageID,
		ETag:         rr.ETag,
		MaxAge:       time.Duration(rr.MaxAgeSecs) * time.Second,
		DownloadedAt: rr.DownloadedAt,
	}, nil
}

// PutRemote records r, replacing what was recorded for r.URL. The image
// must be stored already, so a remote never points at nothing.
func (s *Store) PutRemote(r Remote) error {
	if r.URL == "" {
		return fmt.Errorf("remote: empty URL: %w", errdefs.ErrInvalid)
	}
	if err := checkID(r.ImageID); err != nil {
		return fmt.Errorf("remote %s: %w", r.URL, err)
	}
	v, err := json.Marshal(remoteRecord{
		ImageID:      r.ImageID,
		ETag:         r.ETag,
		MaxAgeSecs:   int64(r.MaxAge / time.Second),
		DownloadedAt: r.DownloadedAt,
	})
	if err != nil {
		return err
	}
	err = s.update(func(tx *bolt.Tx) error {
		if _, ok, err := getRecord(tx, r.ImageID); err != nil {
			return err
		} else if !ok {
			return errNotIndexed(r.ImageID)
		}
		b, err := tx.CreateBucketIfNotExists(bucketRemotes)
		if err != nil {
			return err
		}
		return b.Put([]byte(r.URL), v)
	}, nil)
	if err != nil {
		return fmt.Errorf("remote %s: %w", r.URL, err)
	}
	return nil
}

// dropRemotes deletes the remotes that point at image id.
func dropRemotes(tx *bolt.Tx, id string) error {
	b := tx.Bucket(bucketRemotes)
	if b == nil {
		return nil
	}
	var stale [][]byte
	err := b.ForEach(func(k, v []byte) error {
		var rr remoteRecord
		if json.Unmarshal(v, &rr) != nil || rr.ImageID == id {
			stale = append(stale, append([]byte(nil), k...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range stale {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}
