package store

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// readRootfs fails unless the tree's rootfs holds each file with its
// content.
func checkRootfs(t testing.TB, tr *Tree, files map[string]string) {
	t.Helper()
	for p, want := range files {
		got, err := os.ReadFile(filepath.Join(tr.Path, "rootfs", p))
		if err != nil {
			t.Errorf("tree %s: %v", tr.ID, err)
			continue
		}
		if string(got) != want {
			t.Errorf("tree %s: %s = %q, want %q", tr.ID, p, got, want)
		}
	}
}

func TestTreeRendersDependencies(t *testing.T) {
	s := newTestStore(t)
	base := mustImport(t, s, testImage{name: "example.com/base", files: map[string]string{"etc/base": "base", "etc/shared": "from base"}}.build(t), ImportOptions{})
	app := mustImport(t, s, testImage{name: "example.com/app", deps: []string{"example.com/base"}, files: map[string]string{"bin/app": "app", "etc/shared": "from app"}}.build(t), ImportOptions{})

	tr, err := s.Tree(t.Context(), app.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Chain) != 2 || tr.Chain[0] != app.ID || tr.Chain[1] != base.ID {
		t.Fatalf("chain = %v", tr.Chain)
	}
	if tr.ID != TreeID(tr.Chain) || tr.Path != s.treePath(tr.ID) {
		t.Fatalf("tree %s at %s", tr.ID, tr.Path)
	}
	if tr.Manifest == nil || tr.Manifest.Name != "example.com/app" {
		t.Fatalf("manifest = %v", tr.Manifest)
	}
	checkRootfs(t, tr, map[string]string{"etc/base": "base", "bin/app": "app", "etc/shared": "from app"})
	if _, err := os.Stat(filepath.Join(tr.Path, "manifest")); err != nil {
		t.Fatal(err)
	}
	marker, _ := os.Stat(filepath.Join(tr.Path, renderedMarker))
	if err := tr.Release(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Release(); err != nil {
		t.Fatal("a second Release should be harmless:", err)
	}

	// Asking again reuses the tree instead of rendering it again.
	again, err := s.Tree(t.Context(), app.ID[:len(idPrefix)+10])
	if err != nil {
		t.Fatal(err)
	}
	defer again.Release()
	marker2, _ := os.Stat(filepath.Join(again.Path, renderedMarker))
	if again.ID != tr.ID || !os.SameFile(marker, marker2) {
		t.Fatal("the tree was rendered a second time")
	}
	if names := dirNames(t, s.treesDir()); len(names) != 1 {
		t.Fatalf("trees dir holds %v", names)
	}
}

func TestTreeMissingDependency(t *testing.T) {
	s := newTestStore(t)
	app := mustImport(t, s, testImage{name: "example.com/app", deps: []string{"example.com/absent"}}.build(t), ImportOptions{})
	_, err := s.Tree(t.Context(), app.ID)
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("err = %v, want ErrNotFound", err)
	}
	if names := dirNames(t, s.treesDir()); len(names) != 0 {
		t.Fatalf("trees dir holds %v", names)
	}
}

func TestTreeRerendersIncompleteTree(t *testing.T) {
	s := newTestStore(t)
	img := mustImport(t, s, testImage{name: "example.com/a", files: map[string]string{"f": "a"}}.build(t), ImportOptions{})
	treeID := TreeID([]string{img.ID})
	// What a crash half way through an old-style render would leave.
	if err := os.MkdirAll(filepath.Join(s.treePath(treeID), "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFileT(t, filepath.Join(s.treePath(treeID), "rootfs", "junk"), "junk")
	tr, err := s.Tree(t.Context(), img.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Release()
	checkRootfs(t, tr, map[string]string{"f": "a"})
	if _, err := os.Stat(filepath.Join(tr.Path, "rootfs", "junk")); !os.IsNotExist(err) {
		t.Fatal("the incomplete tree's content survived")
	}
}

func TestTreeConcurrentCallersRenderOnce(t *testing.T) {
	s := newTestStore(t)
	img := mustImport(t, s, testImage{name: "example.com/a", files: map[string]string{"f": "a"}}.build(t), ImportOptions{})
	const n = 8
	var wg sync.WaitGroup
	trees := make([]*Tree, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			trees[i], errs[i] = s.Tree(t.Context(), img.ID)
		}()
	}
	wg.Wait()
	var first os.FileInfo
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		fi, err := os.Stat(filepath.Join(trees[i].Path, renderedMarker))
		if err != nil {
			t.Fatal(err)
		}
		if first == nil {
			first = fi
		} else if !os.SameFile(first, fi) {
			t.Fatal("callers got different renderings")
		}
	}
	// While they hold it, GC keeps it.
	rep, err := s.GC(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.TreesRemoved) != 0 || len(rep.TreesKept) != 1 {
		t.Fatalf("GC with the tree held: %+v", rep)
	}
	for _, tr := range trees {
		tr.Release()
	}
	rep, err = s.GC(t.Context(), nil)
	if err != nil || len(rep.TreesRemoved) != 1 {
		t.Fatalf("GC after release: %+v, %v", rep, err)
	}
	if names := dirNames(t, s.locksDir()); len(names) != 0 {
		t.Fatalf("lock files left: %v", names)
	}
}

func writeFileT(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
