package store

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func TestRemove(t *testing.T) {
	s := newTestStore(t)
	base := mustImport(t, s, testImage{name: "example.com/base", files: map[string]string{"b": "b"}}.build(t), ImportOptions{})
	app := mustImport(t, s, testImage{name: "example.com/app", deps: []string{"example.com/base"}}.build(t), ImportOptions{})
	other := mustImport(t, s, testImage{name: "example.com/other"}.build(t), ImportOptions{})
	appTree, err := s.Tree(t.Context(), app.ID)
	if err != nil {
		t.Fatal(err)
	}
	appTree.Release()
	otherTree, err := s.Tree(t.Context(), other.ID)
	if err != nil {
		t.Fatal(err)
	}
	otherTree.Release()

	// A pod uses the app's tree: removing the base keeps it.
	inUse := func(treeID string) (bool, error) { return treeID == appTree.ID, nil }
	if err := s.Remove(t.Context(), base.ID, inUse); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(base.ID); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Get after Remove = %v", err)
	}
	if _, err := os.Stat(s.blobPath(base.ID)); !os.IsNotExist(err) {
		t.Fatal("blob still there")
	}
	if _, err := os.Stat(appTree.Path); err != nil {
		t.Fatal("a tree in use was removed")
	}
	// Not in use any more: removing the app takes its tree too, and leaves
	// the unrelated tree alone.
	if err := s.Remove(t.Context(), app.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(appTree.Path); !os.IsNotExist(err) {
		t.Fatal("the tree outlived its image")
	}
	if _, err := os.Stat(otherTree.Path); err != nil {
		t.Fatal("an unrelated tree was removed")
	}
	if err := s.Remove(t.Context(), app.ID, nil); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("second Remove = %v", err)
	}
	checkConsistent(t, s)
}

func TestRemoveKeepsLockedTree(t *testing.T) {
	s := newTestStore(t)
	img := mustImport(t, s, testImage{name: "example.com/a"}.build(t), ImportOptions{})
	tr, err := s.Tree(t.Context(), img.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Release()
	if err := s.Remove(t.Context(), img.ID, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(tr.Path, renderedMarker)); err != nil {
		t.Fatal("a tree held by a caller was removed")
	}
}

func TestGCRemovesLeftovers(t *testing.T) {
	s := newTestStore(t)
	s.tmpMinAge = 0
	kept := mustImport(t, s, testImage{name: "example.com/kept"}.build(t), ImportOptions{})
	lost := mustImport(t, s, testImage{name: "example.com/lost"}.build(t), ImportOptions{})
	usedTree, err := s.Tree(t.Context(), kept.ID)
	if err != nil {
		t.Fatal(err)
	}
	usedTree.Release()

	// A blob whose index entry never made it (crash between the rename and
	// the commit), an index entry whose blob was deleted by hand, a temp
	// file from an interrupted import, an interrupted render, and an
	// incomplete tree.
	orphanRaw := testImage{name: "example.com/orphan"}.build(t)
	orphan := idOf(orphanRaw)
	os.MkdirAll(filepath.Dir(s.blobPath(orphan)), 0o755)
	writeFileT(t, s.blobPath(orphan), string(orphanRaw))
	if err := os.Remove(s.blobPath(lost.ID)); err != nil {
		t.Fatal(err)
	}
	writeFileT(t, filepath.Join(s.tmpDir(), "import-123.aci"), "partial")
	fakeTree := TreeID([]string{orphan})
	os.MkdirAll(filepath.Join(s.treesDir(), renderPrefix+fakeTree+"-999", "rootfs"), 0o755)
	os.MkdirAll(filepath.Join(s.treePath(TreeID([]string{lost.ID})), "rootfs"), 0o755)

	// A temp file that an import is writing right now must stay.
	live, err := s.lockedTemp("import-*.aci")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()

	inUse := func(treeID string) (bool, error) { return treeID == usedTree.ID, nil }
	rep, err := s.GC(t.Context(), inUse)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rep.BlobsRemoved, []string{orphan}) {
		t.Errorf("BlobsRemoved = %v", rep.BlobsRemoved)
	}
	if !slices.Equal(rep.EntriesRemoved, []string{lost.ID}) {
		t.Errorf("EntriesRemoved = %v", rep.EntriesRemoved)
	}
	if !slices.Equal(rep.TreesKept, []string{usedTree.ID}) || !slices.Equal(rep.TreesRemoved, []string{TreeID([]string{lost.ID})}) {
		t.Errorf("trees: kept %v removed %v", rep.TreesKept, rep.TreesRemoved)
	}
	if len(rep.TempRemoved) != 2 {
		t.Errorf("TempRemoved = %v", rep.TempRemoved)
	}
	if _, err := os.Stat(live.Name()); err != nil {
		t.Error("GC removed a temp file in use")
	}
	if names := dirNames(t, s.treesDir()); !slices.Equal(names, []string{usedTree.ID}) {
		t.Errorf("trees left: %v", names)
	}
	live.Close()
	os.Remove(live.Name())
	checkConsistent(t, s)

	// A second run finds nothing more to do.
	rep, err = s.GC(t.Context(), inUse)
	if err != nil || len(rep.TreesRemoved)+len(rep.TempRemoved)+len(rep.BlobsRemoved)+len(rep.EntriesRemoved) != 0 {
		t.Fatalf("second GC: %+v, %v", rep, err)
	}
}

func TestGCLeavesFreshTempFiles(t *testing.T) {
	s, clock := newClockedStore(t)
	path := filepath.Join(s.tmpDir(), "import-1.aci")
	writeFileT(t, path, "x")
	if _, err := s.GC(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal("a temp file just written was removed")
	}
	clock.Advance(tmpMinAge + time.Second)
	if _, err := s.GC(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatal("an old temp file was kept")
	}
}

func TestExpireImages(t *testing.T) {
	s, clock := newClockedStore(t)
	old := mustImport(t, s, testImage{name: "example.com/old"}.build(t), ImportOptions{})
	clock.Advance(2 * time.Hour)
	fresh := mustImport(t, s, testImage{name: "example.com/fresh"}.build(t), ImportOptions{})
	clock.Advance(30 * time.Minute)
	removed, err := s.ExpireImages(t.Context(), time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0].ID != old.ID {
		t.Fatalf("removed %v", removed)
	}
	if _, err := s.Get(fresh.ID); err != nil {
		t.Fatal(err)
	}
	checkConsistent(t, s)
}
