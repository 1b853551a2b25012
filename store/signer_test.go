package store

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func TestImportRecordsSigner(t *testing.T) {
	s := newTestStore(t)
	fp := strings.Repeat("ab", 20)
	other := strings.Repeat("cd", 32)
	raw := testImage{name: "example.com/signed"}.build(t)

	img := mustImport(t, s, raw, ImportOptions{})
	if img.Signer != Unverified || img.Verified() {
		t.Fatalf("zero ImportOptions recorded signer %q, want unverified", img.Signer)
	}
	// Verified later: the record is upgraded.
	img = mustImport(t, s, raw, ImportOptions{Signer: fp})
	if img.Signer != fp || !img.Verified() {
		t.Fatalf("signer %q after a verified import, want %s", img.Signer, fp)
	}
	// Imported again unverified: the same content keeps its signer.
	img = mustImport(t, s, raw, ImportOptions{})
	if img.Signer != fp {
		t.Fatalf("an unverified import downgraded the signer to %q", img.Signer)
	}
	// A newer verification replaces the signer.
	mustImport(t, s, raw, ImportOptions{Signer: other})
	for _, get := range []func() (Image, error){
		func() (Image, error) { return s.Get(img.ID) },
		func() (Image, error) { return s.FindByName("example.com/signed", nil) },
		func() (Image, error) { l, err := s.List(); return l[0], err },
	} {
		got, err := get()
		if err != nil || got.Signer != other {
			t.Fatalf("stored signer %q, %v; want %s", got.Signer, err, other)
		}
	}

	builtin := mustImport(t, s, testImage{name: "example.com/builtin"}.build(t), ImportOptions{Signer: SignerBuiltin})
	if !builtin.Verified() {
		t.Fatal("a built-in image is not verified")
	}
}

func TestImportRejectsBadSigner(t *testing.T) {
	s := newTestStore(t)
	raw := testImage{name: "example.com/a"}.build(t)
	for _, signer := range []string{"unverified", strings.Repeat("AB", 20), strings.Repeat("ab", 19), "../x"} {
		if _, err := s.Import(strings.NewReader(string(raw)), ImportOptions{Signer: signer}); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("Import with signer %q = %v, want ErrInvalid", signer, err)
		}
	}
	if images, err := s.List(); err != nil || len(images) != 0 {
		t.Fatalf("refused imports left %d images, %v", len(images), err)
	}
}

// A record written before the store recorded signers has no signer field:
// it reads as unverified.
func TestRecordWithoutSignerIsUnverified(t *testing.T) {
	s := newTestStore(t)
	img := mustImport(t, s, testImage{name: "example.com/old"}.build(t), ImportOptions{Signer: strings.Repeat("ab", 20)})
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImages)
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(b.Get([]byte(img.ID)), &fields); err != nil {
			return err
		}
		delete(fields, "signer")
		v, err := json.Marshal(fields)
		if err != nil {
			return err
		}
		return b.Put([]byte(img.ID), v)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(img.ID)
	if err != nil || got.Verified() {
		t.Fatalf("old record: signer %q, %v; want unverified", got.Signer, err)
	}
}
