package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	ocitypes "github.com/google/go-containerregistry/pkg/v1/types"
)

// Functional tests of volumes and mounts orbit handles as rkt 1.30 does;
// helpers are in rkt_compat_test.go.

// A host volume whose source is a file is mounted at a path the image
// lacks (the target file is created), at /etc/hosts, and through a
// symbolic link of the image, which is resolved inside the app's root.
func TestRktFileVolumeAtMissingTarget(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "file")
	writeFile(t, src, "from-the-host\n")
	hostDir := filepath.Join(t.TempDir(), "hostonly")
	aci := rktImageFromRootfs(t, "example.com/filevol", func(dir string) {
		os.MkdirAll(filepath.Join(dir, "srv"), 0o755)
		os.Symlink("/srv", filepath.Join(dir, "vlink"))
		// An absolute link naming a host directory: resolved in the app.
		os.MkdirAll(filepath.Join(dir, hostDir), 0o755)
		os.Symlink(hostDir, filepath.Join(dir, "hlink"))
	}, nil, "/bin/sh", "-c", "cat /newfile /etc/hosts /srv/viafile /hlink/x && test -f /newfile && echo file-ok")
	for _, fl := range rktFlavours(t) {
		r := e.run("run", "--insecure-options=image", fl, "--volume=v,kind=host,source="+src, aci,
			"--mount=volume=v,target=/newfile", "--mount=volume=v,target=/etc/hosts",
			"--mount=volume=v,target=/vlink/viafile", "--mount=volume=v,target=/hlink/x")
		if r.Code != 0 || strings.Count(r.Stdout, "from-the-host") != 4 || !strings.Contains(r.Stdout, "file-ok") {
			t.Errorf("%s: file volume at missing targets: %s", fl, r)
		}
		if _, err := os.Stat(filepath.Join(hostDir, "x")); err == nil {
			t.Errorf("%s: a mount target was created on the host through the image's link", fl)
		}
	}
}

// Nested mount targets are mounted shallowest first, so each is visible:
// the image's /dir1 mount point does not hide a mount at /dir1/dir2/dir3.
func TestRktNestedMountTargetsAllVisible(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	outer, inner := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(outer, "outer"), "outer\n")
	writeFile(t, filepath.Join(inner, "inner"), "inner\n")
	aci := rktImage(t, "example.com/nested", func(m map[string]any) {
		rktApp(m)["mountPoints"] = []map[string]any{{"name": "dir1", "path": "/dir1"}}
	}, "/bin/sh", "-c", "cat /dir1/outer /dir1/dir2/dir3/inner")
	for _, fl := range rktFlavours(t) {
		r := e.run("run", "--insecure-options=image", fl,
			"--volume=dir1,kind=host,source="+outer, "--volume=deep,kind=host,source="+inner, aci,
			"--mount=volume=deep,target=/dir1/dir2/dir3")
		if r.Code != 0 || !strings.Contains(r.Stdout, "outer\ninner\n") {
			t.Errorf("%s: nested mounts: %s", fl, r)
		}
	}
}

// A volume's readOnly=false wins over the image mount point's readOnly:
// true; a volume that does not set it follows the mount point.
func TestRktVolumeReadOnlySettingWins(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()
	aci := rktImage(t, "example.com/rovol", func(m map[string]any) {
		rktApp(m)["mountPoints"] = []map[string]any{{"name": "data", "path": "/data", "readOnly": true}}
	}, "/bin/sh", "-c", "touch /data/x && echo wrote")
	for _, fl := range rktFlavours(t) {
		r := e.run("run", "--insecure-options=image", fl, "--volume=data,kind=host,source="+dir+",readOnly=false", aci)
		if r.Code != 0 || !strings.Contains(r.Stdout, "wrote") {
			t.Errorf("%s: readOnly=false volume on a readOnly mount point: %s", fl, r)
		}
		r = e.run("run", "--insecure-options=image", fl, "--volume=data,kind=host,source="+dir, aci)
		if r.Code == 0 || strings.Contains(r.Stdout, "wrote") || !strings.Contains(r.Stderr+r.Stdout, "Read-only") {
			t.Errorf("%s: a volume without readOnly on a readOnly mount point was writable: %s", fl, r)
		}
	}
}

// /etc/mtab exists in the app (a link to /proc/self/mounts), and
// --hostname also writes /etc/hostname in the app.
func TestRktEtcMtabAndHostnameFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := rktImage(t, "example.com/etcfiles", nil, "/bin/sh", "-c",
		"echo link=$(readlink /etc/mtab); grep -c ' /proc ' /etc/mtab; echo name=$(cat /etc/hostname 2>/dev/null)")
	for _, fl := range rktFlavours(t) {
		r := e.run("run", "--insecure-options=image", fl, aci)
		if r.Code != 0 || !strings.Contains(r.Stdout, "link=../proc/self/mounts\n") || strings.Contains(r.Stdout, "\n0\n") {
			t.Errorf("%s: /etc/mtab: %s", fl, r)
		}
	}
	r := e.run("run", "--insecure-options=image", rktNspawn, "--hostname=rkt-compat-host", aci)
	if r.Code != 0 || !strings.Contains(r.Stdout, "name=rkt-compat-host\n") {
		t.Errorf("--hostname did not write /etc/hostname: %s", r)
	}
}

// An implicit empty volume of a converted Docker image (annotation
// appc.io/docker/repository) starts with the image's files at its path,
// with the directory's owner and mode, as in Docker and rkt: links are
// copied as links, and a mount point whose path is a link naming a host
// directory is resolved inside the app's root, so the image's files are
// copied, not the host's. An appc image's volume stays empty.
func TestRktDockerImageVolumeFilledFromImage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hostDir := filepath.Join(t.TempDir(), "host-secret")
	writeFile(t, filepath.Join(hostDir, "secret"), "host file\n")
	rootfs := func(dir string) {
		writeFile(t, filepath.Join(dir, "data/seed"), "seeded\n")
		writeFile(t, filepath.Join(dir, "data/sub/nested"), "nested\n")
		os.Symlink("/etc/passwd", filepath.Join(dir, "data/link"))
		os.Chown(filepath.Join(dir, "data"), 1000, 1000)
		os.Chmod(filepath.Join(dir, "data"), 0o750)
		// The link's target exists in the image too, with a file of its own.
		writeFile(t, filepath.Join(dir, hostDir, "in-image"), "image file\n")
		os.Symlink(hostDir, filepath.Join(dir, "escape"))
	}
	mps := []map[string]any{{"name": "data", "path": "/data"}, {"name": "escape", "path": "/escape"}}
	show := "cat /data/seed /data/sub/nested; echo link=$(readlink /data/link); echo dir=$(stat -c %u:%g:%a /data); " +
		"echo escape=$(ls /escape); echo more > /data/more && echo writable"
	docker := rktImageFromRootfs(t, "example.com/docker-vol", rootfs, func(m map[string]any) {
		rktApp(m)["mountPoints"] = mps
		m["annotations"] = []map[string]string{{"name": "appc.io/docker/repository", "value": "library/dockervol"}}
	}, "/bin/sh", "-c", show)
	plain := rktImageFromRootfs(t, "example.com/appc-vol", rootfs, func(m map[string]any) {
		rktApp(m)["mountPoints"] = mps
	}, "/bin/sh", "-c", "echo entries=$(ls -A /data | wc -l)")
	for _, fl := range rktFlavours(t) {
		r := e.run("run", "--insecure-options=image", fl, docker)
		want := "seeded\nnested\nlink=/etc/passwd\ndir=1000:1000:750\nescape=in-image\nwritable\n"
		if r.Code != 0 || r.Stdout != want {
			t.Errorf("%s: a Docker image's implicit volume: want %q: %s", fl, want, r)
		}
		if r := e.run("run", "--insecure-options=image", fl, plain); r.Code != 0 || r.Stdout != "entries=0\n" {
			t.Errorf("%s: an appc image's implicit volume is not empty: %s", fl, r)
		}
	}
	if got, _ := os.ReadDir(hostDir); len(got) != 1 {
		t.Errorf("the host directory the image's link names was changed: %v", got)
	}
}

// An OCI image whose config declares a VOLUME over a directory with files
// runs with those files in the volume.
func TestRktOCIVolumeFilledFromImage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img, err := mutate.AppendLayers(empty.Image, ociDirLayer(t, busyboxRootfs(t)), ociLayer(t,
		ociTarEntry{name: "var/lib/app/"},
		ociTarEntry{name: "var/lib/app/state", body: "initial state\n"},
		ociTarEntry{name: "var/lib/app/conf.d/"},
		ociTarEntry{name: "var/lib/app/conf.d/a.conf", body: "a=1\n"},
	))
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, ocitypes.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, ocitypes.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config.Cmd = []string{"/bin/sh", "-c", "cat /var/lib/app/state /var/lib/app/conf.d/a.conf; grep -c ' /var/lib/app ' /proc/self/mounts"}
	cfg.Config.Volumes = map[string]struct{}{"/var/lib/app": {}}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	ref := "oci:" + ociWriteLayout(t, img, "v1") + ":v1"
	for _, fl := range rktFlavours(t) {
		r := e.run("run", "--insecure-options=image", fl, ref)
		if r.Code != 0 || r.Stdout != "initial state\na=1\n1\n" {
			t.Errorf("%s: an OCI VOLUME over files: %s", fl, r)
		}
	}
}
