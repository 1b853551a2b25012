package store

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/appc/spec/schema/types"
	bolt "go.etcd.io/bbolt"

	"github.com/orbit-containers/orbit/aci/oci"
)

func TestOCINameColumn(t *testing.T) {
	var a types.Annotations
	if got := ociName(a); got != "" {
		t.Fatalf("no annotations: %q", got)
	}
	a.Set(oci.AnnotationRegistry, "127.0.0.1:5000")
	a.Set(oci.AnnotationRepository, "demo/app")
	a.Set(oci.AnnotationManifestHash, "sha256:abc")
	if got := ociName(a); got != "127.0.0.1:5000/demo/app@sha256:abc" {
		t.Fatalf("untagged: %q", got)
	}
	a.Set(oci.AnnotationTag, "v1")
	m, _ := json.Marshal(map[string]any{"annotations": a})
	c, err := columnsOf(m)
	if err != nil || c.OCIName != "127.0.0.1:5000/demo/app:v1" {
		t.Fatalf("columnsOf = %+v, %v", c, err)
	}
}

// TestListBriefMatchesList: the listing from the index records alone shows
// what the full one does, for records with columns and for records
// written before them, which the next import fills in.
func TestListBriefMatchesList(t *testing.T) {
	s := newTestStore(t)
	for _, n := range []string{"example.com/a", "example.com/b", "example.com/c"} {
		mustImport(t, s, testImage{name: n, version: "1.0"}.build(t), ImportOptions{})
	}
	check := func(what string) {
		t.Helper()
		full, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		brief, err := s.ListBrief()
		if err != nil {
			t.Fatal(err)
		}
		for i := range full {
			if full[i].Manifest == nil || brief[i].Manifest != nil {
				t.Fatalf("%s: manifests %v, %v", what, full[i].Manifest, brief[i].Manifest)
			}
			full[i].Manifest = nil
		}
		if !reflect.DeepEqual(full, brief) {
			t.Fatalf("%s:\nList      %+v\nListBrief %+v", what, full, brief)
		}
	}
	check("new records")

	// Records as an older orbit wrote them: no columns.
	stripped := func() int {
		n := 0
		if err := s.update(func(tx *bolt.Tx) error {
			return forEachRecord(tx, func(id string, rec record) error {
				if rec.Columns != nil {
					n++
				}
				return nil
			})
		}, nil); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketImages)
		return forEachRecord(tx, func(id string, rec record) error {
			rec.Columns = nil
			v, _ := json.Marshal(rec)
			return b.Put([]byte(id), v)
		})
	}, nil); err != nil {
		t.Fatal(err)
	}
	if n := stripped(); n != 0 {
		t.Fatalf("%d records still have columns", n)
	}
	check("old records")
	mustImport(t, s, testImage{name: "example.com/d", version: "1.0"}.build(t), ImportOptions{})
	if n := stripped(); n != 4 {
		t.Fatalf("after an import %d of 4 records have columns", n)
	}
	check("filled records")
}
