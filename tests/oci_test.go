package tests

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// ociTarEntry is one entry of a test layer: a file with content, a
// directory (name ending in "/"), or a symlink (link set).
type ociTarEntry struct {
	name, body, link string
	mode             int64
}

// ociLayer builds a gzip layer from entries.
func ociLayer(t testing.TB, entries ...ociTarEntry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Mode: e.mode, Typeflag: tar.TypeReg, Size: int64(len(e.body)), Format: tar.FormatPAX}
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
		}
		switch {
		case strings.HasSuffix(e.name, "/"):
			hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
		case e.link != "":
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeSymlink, e.link, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Size > 0 {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// ociDirLayer builds a layer holding a directory tree.
func ociDirLayer(t testing.TB, root string) v1.Layer {
	t.Helper()
	return ociLayer(t, ociDirEntries(t, root)...)
}

// ociDirEntries lists the tree at root as layer entries.
func ociDirEntries(t testing.TB, root string) []ociTarEntry {
	t.Helper()
	var entries []ociTarEntry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			entries = append(entries, ociTarEntry{name: rel + "/"})
		case info.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			entries = append(entries, ociTarEntry{name: rel, link: target})
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			entries = append(entries, ociTarEntry{name: rel, body: string(data), mode: int64(info.Mode().Perm())})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// ociTestImage is a three-layer busybox image: the second layer deletes a
// file and empties a directory the first made, and the config names a
// non-root user, an exposed port, a volume, environment and a label.
func ociTestImage(t testing.TB, cmd ...string) v1.Image {
	t.Helper()
	base := ociDirLayer(t, busyboxRootfs(t))
	extra := ociLayer(t,
		ociTarEntry{name: "etc/doomed", body: "delete me\n"},
		ociTarEntry{name: "opq/"},
		ociTarEntry{name: "opq/old", body: "old\n"},
		ociTarEntry{name: "data/"},
	)
	upper := ociLayer(t,
		ociTarEntry{name: "etc/.wh.doomed"},
		ociTarEntry{name: "opq/"},
		ociTarEntry{name: "opq/.wh..wh..opq"},
		ociTarEntry{name: "opq/new", body: "new\n"},
		ociTarEntry{name: "srv/"},
		ociTarEntry{name: "srv/hello", body: "hello from the top layer\n"},
	)
	img, err := mutate.AppendLayers(empty.Image, base, extra, upper)
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config.Entrypoint = []string{"/bin/sh", "-c"}
	if len(cmd) == 0 {
		cmd = []string{"echo uid=$(id -u) gid=$(id -g) pwd=$(pwd) greeting=$GREETING; cat /srv/hello; ls /opq; test -e /etc/doomed && echo doomed-present || echo doomed-absent"}
	}
	cfg.Config.Cmd = cmd
	cfg.Config.Env = []string{"PATH=/bin", "GREETING=hi there"}
	cfg.Config.User = "user"
	cfg.Config.WorkingDir = "/srv"
	cfg.Config.ExposedPorts = map[string]struct{}{"8080/tcp": {}}
	cfg.Config.Volumes = map[string]struct{}{"/data": {}}
	cfg.Config.Labels = map[string]string{"org.opencontainers.image.title": "demo"}
	img, err = mutate.ConfigFile(img, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// ociWriteLayout writes img to an OCI layout directory, tagged tag.
func ociWriteLayout(t testing.TB, img v1.Image, tag string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag})); err != nil {
		t.Fatal(err)
	}
	return dir
}

// ociTarDir writes a tar of dir's contents.
func ociTarDir(t testing.TB, dir, file string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			return tw.WriteHeader(&tar.Header{Name: rel + "/", Typeflag: tar.TypeDir, Mode: 0o755})
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: rel, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	tw.Close()
	writeFile(t, file, buf.String())
}

const ociWantOutput = "uid=1000 gid=1000 pwd=/srv greeting=hi there\nhello from the top layer\nnew\ndoomed-absent\n"

// TestOCILocalSources runs the same image from an OCI layout, an OCI
// archive and a docker archive: the config becomes the app, and the
// whiteout and opaque directory are honoured.
func TestOCILocalSources(t *testing.T) {
	t.Parallel()
	img := ociTestImage(t)
	dir := ociWriteLayout(t, img, "v1")
	archive := filepath.Join(t.TempDir(), "image.oci.tar")
	ociTarDir(t, dir, archive)
	dockerArchive := filepath.Join(t.TempDir(), "image.docker.tar")
	tag, _ := name.NewTag("example.com/demo/app:2.0")
	if err := tarball.WriteToFile(dockerArchive, tag, img); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"oci:" + dir + ":v1", "oci:" + dir, "oci-archive:" + archive + ":v1", "docker-archive:" + dockerArchive} {
		t.Run(strings.SplitN(ref, ":", 2)[0], func(t *testing.T) {
			e := newEnv(t)
			r := e.run("run", "--stage1-name=fly", ref)
			if r.Code == 0 || !strings.Contains(r.Stderr, "--insecure-options=image") {
				t.Fatalf("an unsigned OCI image ran without --insecure-options=image: %s", r)
			}
			if out := e.mustRun("image", "list", "--no-legend").Stdout; out != "" {
				t.Fatalf("a refused image was stored: %q", out)
			}
			r = e.mustRun("run", "--insecure-options=image", "--stage1-name=fly", ref)
			if !strings.Contains(r.Stdout, ociWantOutput) {
				t.Fatalf("app output: want %q in\n%s", ociWantOutput, r)
			}
		})
	}
}

// TestOCIConversion checks the manifest an OCI image becomes, --exec and
// arguments overriding Entrypoint/Cmd, and the image commands.
func TestOCIConversion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := ociWriteLayout(t, ociTestImage(t), "v1")
	ref := "oci:" + dir + ":v1"
	id := strings.TrimSpace(e.mustRun("fetch", "--insecure-options=image", ref).Stdout)
	// The same image converts to the same ID.
	if again := strings.TrimSpace(e.mustRun("fetch", "--insecure-options=image", ref).Stdout); again != id {
		t.Fatalf("fetching the same image twice gave %s and %s", id, again)
	}
	var m struct {
		Name   string `json:"name"`
		Labels []struct{ Name, Value string }
		App    struct {
			Exec        []string
			User, Group string
			WorkingDir  string `json:"workingDirectory"`
			Environment []struct{ Name, Value string }
			MountPoints []struct{ Name, Path string }
			Ports       []struct {
				Name, Protocol string
				Port           int
			}
		}
		Annotations []struct{ Name, Value string }
	}
	if err := json.Unmarshal([]byte(e.mustRun("image", "cat-manifest", id).Stdout), &m); err != nil {
		t.Fatal(err)
	}
	if m.Name != "oci/layout" || m.App.User != "1000" || m.App.Group != "1000" || m.App.WorkingDir != "/srv" ||
		len(m.App.Exec) != 3 || m.App.Exec[0] != "/bin/sh" {
		t.Fatalf("manifest: %+v", m)
	}
	if len(m.App.Ports) != 1 || m.App.Ports[0].Name != "8080-tcp" || m.App.Ports[0].Port != 8080 {
		t.Fatalf("ports: %+v", m.App.Ports)
	}
	if len(m.App.MountPoints) != 1 || m.App.MountPoints[0].Name != "volume-data" || m.App.MountPoints[0].Path != "/data" {
		t.Fatalf("mount points: %+v", m.App.MountPoints)
	}
	ann := map[string]string{}
	for _, a := range m.Annotations {
		ann[a.Name] = a.Value
	}
	if ann["org.opencontainers.image.title"] != "demo" || ann["appc.io/docker/cmd"] == "" || !strings.HasPrefix(ann["appc.io/docker/imageid"], "sha256:") {
		t.Fatalf("annotations: %v", ann)
	}
	r := e.mustRun("run", "--insecure-options=image", "--stage1-name=fly", ref, "--exec=/bin/echo", "--", "overridden", "args")
	if !strings.Contains(r.Stdout, "overridden args\n") {
		t.Fatalf("--exec did not override: %s", r)
	}
	r = e.mustRun("run", "--insecure-options=image", "--stage1-name=fly", ref, "--", "echo from-args")
	if !strings.Contains(r.Stdout, "from-args\n") {
		t.Fatalf("arguments did not replace Cmd: %s", r)
	}
	pm := filepath.Join(t.TempDir(), "pod.json")
	writeFile(t, pm, `{"acKind":"PodManifest","acVersion":"0.8.11","apps":[{"name":"app","image":{"name":"oci/layout","labels":[{"name":"version","value":"v1"}]}}]}`)
	r = e.mustRun("run", "--insecure-options=image", "--stage1-name=fly", "--pod-manifest="+pm)
	if !strings.Contains(r.Stdout, ociWantOutput) {
		t.Fatalf("--pod-manifest: %s", r)
	}
	uuid := strings.TrimSpace(e.mustRun("prepare", "--insecure-options=image", "--stage1-name=fly", ref).Stdout)
	r = e.mustRun("run-prepared", uuid)
	if !strings.Contains(r.Stdout, ociWantOutput) {
		t.Fatalf("prepare and run-prepared: %s", r)
	}
	if out := e.mustRun("image", "list", "--no-legend").Stdout; !strings.Contains(out, "oci/layout") {
		t.Fatalf("image list: %s", out)
	}
	file := filepath.Join(t.TempDir(), "out.aci")
	e.mustRun("image", "export", id, file)
	e.mustRun("image", "rm", id)
	if r := e.run("image", "cat-manifest", id); r.Code == 0 {
		t.Fatalf("removed image still there: %s", r)
	}
	// The store keeps an OCI image as its layers: export writes them
	// flattened, an ACI of its own that runs the same.
	aciID := strings.TrimSpace(e.mustRun("fetch", "--insecure-options=image", file).Stdout)
	r = e.mustRun("run", "--insecure-options=image", "--stage1-name=fly", aciID)
	if !strings.Contains(r.Stdout, ociWantOutput) {
		t.Fatalf("the exported image: %s", r)
	}
}

// ociRefused checks that a refused fetch failed with a one-line error
// holding want and left nothing in the store.
func ociRefused(t testing.TB, e *env, r result, want string) {
	t.Helper()
	var errLines []string
	for _, l := range strings.Split(strings.TrimSpace(r.Stderr), "\n") {
		if strings.HasPrefix(l, "orbit: ") && !strings.HasPrefix(l, "orbit: warning") {
			errLines = append(errLines, l)
		}
	}
	if r.Code == 0 || len(errLines) != 1 || !strings.Contains(errLines[0], want) {
		t.Fatalf("want one error line holding %q: %s", want, r)
	}
	if out := e.mustRun("image", "list", "--no-legend").Stdout; out != "" {
		t.Fatalf("a refused image was stored: %q", out)
	}
	tmp, _ := os.ReadDir(filepath.Join(e.Dir, "cas", "tmp"))
	if len(tmp) != 0 {
		t.Fatalf("a refused image left %d temp files", len(tmp))
	}
}

// TestOCIHostileLocal feeds hostile layers and layouts to fetch.
func TestOCIHostileLocal(t *testing.T) {
	t.Parallel()
	base := ociTestImage(t)
	hostile := map[string]struct {
		layer v1.Layer
		want  string
	}{
		"escape":         {ociLayer(t, ociTarEntry{name: "../../escaped", body: "x"}), "path escapes the image root"},
		"absolute":       {ociLayer(t, ociTarEntry{name: "/etc/escaped", body: "x"}), "absolute name"},
		"whiteout-dots":  {ociLayer(t, ociTarEntry{name: "etc/.wh.."}), "whiteout names no file"},
		"whiteout-up":    {ociLayer(t, ociTarEntry{name: "../.wh.etc"}), "path escapes the image root"},
		"whiteout-abs":   {ociLayer(t, ociTarEntry{name: "/.wh.etc"}), "absolute name"},
		"symlink-escape": {ociLayer(t, ociTarEntry{name: "srv/up", link: "../../../../etc"}), "escapes"},
	}
	for what, h := range hostile {
		t.Run(what, func(t *testing.T) {
			e := newEnv(t)
			img, err := mutate.AppendLayers(base, h.layer)
			if err != nil {
				t.Fatal(err)
			}
			dir := ociWriteLayout(t, img, "v1")
			ociRefused(t, e, e.run("fetch", "--insecure-options=image", "oci:"+dir+":v1"), h.want)
		})
	}
	t.Run("content-not-as-config-says", func(t *testing.T) {
		e := newEnv(t)
		dir := ociWriteLayout(t, base, "v1")
		// Replace the top layer's blob with another valid layer.
		layers, _ := base.Layers()
		d, _ := layers[len(layers)-1].Digest()
		other := ociLayer(t, ociTarEntry{name: "srv/hello", body: "forged\n"})
		rc, _ := other.Compressed()
		data, _ := io.ReadAll(rc)
		blob := filepath.Join(dir, "blobs", d.Algorithm, d.Hex)
		os.Chmod(blob, 0o644)
		writeFile(t, blob, string(data))
		ociRefused(t, e, e.run("fetch", "--insecure-options=image", "oci:"+dir+":v1"), "not sha256:")
	})
	t.Run("size-limit", func(t *testing.T) {
		e := newEnv(t)
		e.ExtraEnv = []string{"ORBIT_MAX_IMAGE_SIZE=1MiB"}
		dir := ociWriteLayout(t, base, "v1")
		ociRefused(t, e, e.run("fetch", "--insecure-options=image", "oci:"+dir+":v1"), "larger than the limit")
	})
	t.Run("archive-escape", func(t *testing.T) {
		e := newEnv(t)
		file := filepath.Join(t.TempDir(), "evil.tar")
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: "../../evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644})
		tw.Write([]byte("x"))
		tw.Close()
		writeFile(t, file, buf.String())
		ociRefused(t, e, e.run("fetch", "--insecure-options=image", "oci-archive:"+file), "not a layout file")
	})
}
