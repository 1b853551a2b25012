package pod

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
)

func TestFillFromImageCopiesInsideTheRoot(t *testing.T) {
	root, outside, vol := t.TempDir(), t.TempDir(), t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(outside, "secret"), []byte("host"), 0o600))
	must(os.MkdirAll(filepath.Join(root, "real/sub"), 0o750))
	must(os.WriteFile(filepath.Join(root, "real/file"), []byte("image"), 0o640))
	must(os.WriteFile(filepath.Join(root, "real/sub/deep"), []byte("deep"), 0o644))
	must(os.Symlink(outside, filepath.Join(root, "real/out")))
	// The mount point is a link naming a host path: resolved in the root,
	// where it does not exist.
	must(os.Symlink(outside, filepath.Join(root, "vol")))
	if err := fillFromImage(root, "/vol", vol, true); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(vol); len(ents) != 0 {
		t.Fatalf("copied through a link out of the root: %v", ents)
	}
	// Reached through a link inside the root, links below are kept as links.
	must(os.Symlink("real", filepath.Join(root, "alias")))
	if err := fillFromImage(root, "/alias", vol, true); err != nil {
		t.Fatal(err)
	}
	if data, err := os.ReadFile(filepath.Join(vol, "sub/deep")); err != nil || string(data) != "deep" {
		t.Errorf("sub/deep: %q %v", data, err)
	}
	if fi, err := os.Stat(filepath.Join(vol, "file")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("file: %v %v", fi, err)
	}
	if l, err := os.Readlink(filepath.Join(vol, "out")); err != nil || l != outside {
		t.Errorf("out: %q %v", l, err)
	}
	if fi, err := os.Stat(vol); err != nil || fi.Mode().Perm() != 0o750 {
		t.Errorf("the volume did not take the directory's mode: %v %v", fi, err)
	}
}

func TestDockerVolumes(t *testing.T) {
	im := &schema.ImageManifest{}
	if DockerVolumes(im) || DockerVolumes(nil) {
		t.Error("an appc image follows Docker's volume semantics")
	}
	im.Annotations.Set(types.ACIdentifier("appc.io/docker/repository"), "library/x")
	if !DockerVolumes(im) {
		t.Error("a converted Docker image does not")
	}
}
