package store

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func TestLeaseKeepsImageFromRemoval(t *testing.T) {
	s := newTestStore(t)
	img := mustImport(t, s, testImage{name: "example.com/a", version: "1"}.build(t), ImportOptions{})
	held, leases := s.Leasing()
	if _, err := held.FindByName("example.com/a", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(t.Context(), img.ID, nil); !errors.Is(err, errdefs.ErrBusy) {
		t.Fatalf("Remove of a leased image: %v, want ErrBusy", err)
	}
	removed, err := s.ExpireImages(t.Context(), 0, nil)
	if err != nil || len(removed) != 0 {
		t.Fatalf("ExpireImages removed %v (%v) while leased", removed, err)
	}
	if err := leases.Release(); err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(t.Context(), img.ID, nil); err != nil {
		t.Fatalf("Remove after Release: %v", err)
	}
	if _, err := os.Stat(s.leasePath(img.ID)); !os.IsNotExist(err) {
		t.Errorf("lease file left after removal: %v", err)
	}
	checkConsistent(t, s)
}

func TestLeaseEveryWayAnImageIsReached(t *testing.T) {
	s := newTestStore(t)
	base := mustImport(t, s, testImage{name: "example.com/base", version: "1"}.build(t), ImportOptions{})
	appACI := testImage{name: "example.com/app", version: "1", deps: []string{"example.com/base"}}.build(t)
	held, leases := s.Leasing()
	defer leases.Release()
	app, err := held.Import(bytes.NewReader(appACI), ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Rendering resolves the dependency by name, through the leasing view.
	tree, err := held.Tree(t.Context(), app.ID)
	if err != nil {
		t.Fatal(err)
	}
	tree.Release()
	for _, id := range []string{app.ID, base.ID} {
		if err := s.Remove(t.Context(), id, nil); !errors.Is(err, errdefs.ErrBusy) {
			t.Errorf("Remove of %s: %v, want ErrBusy", id, err)
		}
	}
}

func TestLeaseOfRemovedImageIsNotFound(t *testing.T) {
	s := newTestStore(t)
	img := mustImport(t, s, testImage{name: "example.com/a", version: "1"}.build(t), ImportOptions{})
	held, leases := s.Leasing()
	defer leases.Release()
	if err := s.Remove(t.Context(), img.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := held.Get(img.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Get of a removed image: %v", err)
	}
	if ok, err := held.lease(img.ID); ok || err != nil {
		t.Errorf("lease of a removed image: %v %v", ok, err)
	}
	if len(leases.held) != 0 {
		t.Errorf("leases kept on a removed image: %v", leases.held)
	}
}

func TestExpireKeepsImagesPodsUse(t *testing.T) {
	s, clock := newClockedStore(t)
	img := mustImport(t, s, testImage{name: "example.com/a", version: "1"}.build(t), ImportOptions{})
	tree, err := s.Tree(t.Context(), img.ID)
	if err != nil {
		t.Fatal(err)
	}
	tree.Release()
	used := func(treeID string) (bool, error) { return treeID == tree.ID, nil }
	clock.Advance(time.Second)
	if removed, err := s.ExpireImages(t.Context(), 0, used); err != nil || len(removed) != 0 {
		t.Fatalf("ExpireImages removed %v (%v), whose tree a pod uses", removed, err)
	}
	// Asked by name, removal takes the image and leaves the tree.
	if err := s.Remove(t.Context(), img.ID, used); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tree.Path); err != nil {
		t.Errorf("the pod's tree went with its image: %v", err)
	}
}

func TestGCRemovesStaleLeaseFiles(t *testing.T) {
	s := newTestStore(t)
	stale := idOf([]byte("gone"))
	if err := os.WriteFile(s.leasePath(stale), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GC(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.leasePath(stale)); !os.IsNotExist(err) {
		t.Errorf("stale lease file kept: %v", err)
	}
}
