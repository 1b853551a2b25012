package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// setFormat records format n in the store's index; n == 0 removes the
// record, as in a store made before formats were recorded.
func setFormat(t *testing.T, s *Store, n int) {
	t.Helper()
	err := s.update(func(tx *bolt.Tx) error {
		if n == 0 {
			return tx.DeleteBucket(bucketMeta)
		}
		return writeFormat(tx, n)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
}

func storeFormat(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.view(func(tx *bolt.Tx) (err error) { n, err = readFormat(tx); return err }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNewStoreRecordsItsFormat(t *testing.T) {
	s := newTestStore(t)
	var raw []byte
	s.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta); b != nil {
			raw = append(raw, b.Get(formatKey)...)
		}
		return nil
	})
	if want := fmt.Sprint(latestFormat(migrations())); string(raw) != want {
		t.Fatalf("a new index records format %q, want %q", raw, want)
	}
}

// TestMigration opens a store of an older format with a binary that knows
// two migrations more: both run, in order, once.
func TestMigration(t *testing.T) {
	for _, tc := range []struct {
		name   string
		format int // 0: recorded nowhere, which is format 1
	}{{"unrecorded", 0}, {"format 1", 1}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "cas")
			s, err := open(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			img := mustImport(t, s, testImage{name: "example.com/old"}.build(t), ImportOptions{})
			setFormat(t, s, tc.format)

			var ran []string
			steps := []migration{
				func(tx *bolt.Tx) error { // 1 -> 2: a new bucket
					ran = append(ran, "1->2")
					_, err := tx.CreateBucket([]byte("added-in-2"))
					return err
				},
				func(tx *bolt.Tx) error { // 2 -> 3: rewrites every record
					ran = append(ran, "2->3")
					if tx.Bucket([]byte("added-in-2")) == nil {
						return errors.New("migration 2->3 ran before 1->2")
					}
					return forEachRecord(tx, func(id string, rec record) error {
						rec.Signer = SignerBuiltin
						return putRecord(tx, id, rec)
					})
				},
			}
			s, err = open(dir, steps)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(ran, ",") != "1->2,2->3" {
				t.Fatalf("migrations ran: %v", ran)
			}
			if got := storeFormat(t, s); got != 3 {
				t.Fatalf("format after migrating: %d, want 3", got)
			}
			if got, err := s.Get(img.ID); err != nil || got.Signer != SignerBuiltin {
				t.Fatalf("the migration's change is not in the index: %+v, %v", got, err)
			}
			ran = nil
			if _, err := open(dir, steps); err != nil || len(ran) != 0 {
				t.Fatalf("opening a migrated store again ran %v (%v)", ran, err)
			}
		})
	}
}

// TestMigrationFailureChangesNothing: a migration that fails leaves the
// index as it was, earlier migrations of the same open included.
func TestMigrationFailureChangesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cas")
	s, err := open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	steps := []migration{
		func(tx *bolt.Tx) error { _, err := tx.CreateBucket([]byte("added-in-2")); return err },
		func(tx *bolt.Tx) error { return errors.New("disk on fire") },
	}
	if _, err := open(dir, steps); err == nil || !strings.Contains(err.Error(), "migrating from format 2 to 3: disk on fire") {
		t.Fatalf("open with a failing migration = %v", err)
	}
	if got := storeFormat(t, s); got != 1 {
		t.Fatalf("format after a failed migration: %d, want 1", got)
	}
	s.view(func(tx *bolt.Tx) error {
		if tx.Bucket([]byte("added-in-2")) != nil {
			t.Error("the first migration's change was kept")
		}
		return nil
	})
}

// TestNewerFormatRefused: a store written by a newer orbit is refused in
// one line that says what to do, and is left as it was.
func TestNewerFormatRefused(t *testing.T) {
	s := newTestStore(t)
	latest := latestFormat(migrations())
	setFormat(t, s, latest+1)
	_, err := Open(s.Dir())
	want := fmt.Sprintf("store at %s has format %d, this orbit knows up to %d; upgrade orbit", s.Dir(), latest+1, latest)
	if err == nil || !strings.HasPrefix(err.Error(), want) || strings.Contains(err.Error(), "\n") {
		t.Fatalf("Open = %v, want %q", err, want)
	}
	if !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("Open = %v, want errdefs.ErrInvalid", err)
	}
	if got := storeFormat(t, s); got != latest+1 {
		t.Fatalf("refusing the store changed its format to %d", got)
	}
}

func TestBadFormatRefused(t *testing.T) {
	s := newTestStore(t)
	err := s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(formatKey, []byte("two")) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(s.Dir()); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("Open of an index with a bad format = %v", err)
	}
}

// TestFormat2IsLayeredImages opens a format 1 store: the binary records
// format 2 (layered OCI images) and leaves the images as they were.
func TestFormat2IsLayeredImages(t *testing.T) {
	s := newTestStore(t)
	setFormat(t, s, 1)
	reopened, err := Open(s.dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := storeFormat(t, reopened); got != 2 {
		t.Fatalf("format %d, want 2", got)
	}
}
