package store

import (
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// The index records the format of the whole store (index, blobs, trees,
// leases) as a decimal number under formatKey in the meta bucket. Format 1
// is the store as it was before it recorded one, so an index without the
// key is format 1. A new index is created at the newest format this binary
// knows. Opening an older one migrates it, in one write transaction, by
// the migrations from its format on; opening a newer one is refused, since
// this binary might misread it or write what the newer one misreads. See
// Documentation/design.md, "The store's format".
var (
	bucketMeta = []byte("meta")
	formatKey  = []byte("format")
)

// baseFormat is the format of an index that records none.
const baseFormat = 1

// A migration brings an index from one format to the next, inside the
// write transaction that then records the new format. It must not touch
// anything outside the index: if it fails, the transaction is rolled back
// and the store is as it was.
type migration func(tx *bolt.Tx) error

// migrations lists the migrations from format 1 on: the i-th brings an
// index from format i+1 to i+2. It is a function, not a variable, so no
// package state can change it.
func migrations() []migration {
	return []migration{
		// 1 -> 2: OCI images may be layered (their index records list
		// layers, their rootfs is cas/layertrees/). The index needs no
		// change: images stored before are ACIs and stay so. The new
		// format is recorded so that an older orbit, which would render a
		// layered image's empty ACI rootfs, refuses the store.
		func(*bolt.Tx) error { return nil },
	}
}

// latestFormat is the format the index has after every migration in steps.
func latestFormat(steps []migration) int { return baseFormat + len(steps) }

// readFormat returns the format an index records.
func readFormat(tx *bolt.Tx) (int, error) {
	b := tx.Bucket(bucketMeta)
	if b == nil {
		return baseFormat, nil
	}
	v := b.Get(formatKey)
	if v == nil {
		return baseFormat, nil
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < baseFormat {
		return 0, fmt.Errorf("index records format %q: %w", v, errdefs.ErrInvalid)
	}
	return n, nil
}

func writeFormat(tx *bolt.Tx, n int) error {
	b, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	return b.Put(formatKey, []byte(strconv.Itoa(n)))
}

// upgradeIndex refuses an index newer than steps know and migrates an
// older one. Only an index that needs migrating is opened for writing; the
// format is read again under the write lock, since another process may
// have migrated the index meanwhile.
func (s *Store) upgradeIndex(steps []migration) error {
	latest := latestFormat(steps)
	var have int
	err := s.view(func(tx *bolt.Tx) (err error) {
		have, err = readFormat(tx)
		return err
	})
	if err != nil {
		return fmt.Errorf("image store %s: %w", s.dir, err)
	}
	if have == latest {
		return nil
	}
	if have > latest {
		return s.errTooNew(have, latest)
	}
	var tooNew error
	err = s.update(func(tx *bolt.Tx) error {
		have, err := readFormat(tx)
		if err != nil {
			return err
		}
		if have > latest {
			tooNew = s.errTooNew(have, latest)
			return tooNew
		}
		for v := have; v < latest; v++ {
			if err := steps[v-baseFormat](tx); err != nil {
				return fmt.Errorf("migrating from format %d to %d: %w", v, v+1, err)
			}
		}
		return writeFormat(tx, latest)
	}, nil)
	if err != nil && err != tooNew {
		return fmt.Errorf("image store %s: %w", s.dir, err)
	}
	return err
}

func (s *Store) errTooNew(have, latest int) error {
	return fmt.Errorf("store at %s has format %d, this orbit knows up to %d; upgrade orbit: %w", s.dir, have, latest, errdefs.ErrInvalid)
}
