package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

type memLayer []byte

func (m memLayer) Uncompressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(m)), nil
}

// layer builds a layer from "name" (file), "name/" (dir), "name->target"
// (symlink) and "name=>target" (hard link) specs.
func layer(t testing.TB, specs ...string) memLayer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, s := range specs {
		hdr := &tar.Header{Name: s, Mode: 0o644, Typeflag: tar.TypeReg}
		switch {
		case strings.HasSuffix(s, "/"):
			hdr.Typeflag, hdr.Mode = tar.TypeDir, 0o755
		case strings.Contains(s, "=>"):
			hdr.Name, hdr.Linkname, _ = strings.Cut(s, "=>")
			hdr.Typeflag = tar.TypeLink
		case strings.Contains(s, "->"):
			hdr.Name, hdr.Linkname, _ = strings.Cut(s, "->")
			hdr.Typeflag = tar.TypeSymlink
		default:
			hdr.Size = int64(len(s))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			tw.Write([]byte(s))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func flatten(t testing.TB, layers ...Layer) ([]string, error) {
	t.Helper()
	var out bytes.Buffer
	cfg := &v1.ConfigFile{OS: "linux", Architecture: "amd64"}
	cfg.Config.Cmd = []string{"/bin/sh"}
	err := Convert(context.Background(), cfg, layers, Info{Name: "example.com/test"}, &out, 1<<30)
	if err != nil {
		return nil, err
	}
	tr := tar.NewReader(&out)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n := hdr.Name
		if hdr.Linkname != "" {
			n += ">" + hdr.Linkname
		}
		names = append(names, n)
	}
	return names, nil
}

func TestFlattenWhiteouts(t *testing.T) {
	got, err := flatten(t,
		layer(t, "etc/", "etc/keep", "etc/gone", "opq/", "opq/old", "dir/", "dir/sub/", "dir/sub/f", "file"),
		layer(t, "etc/.wh.gone", "opq/", "opq/.wh..wh..opq", "opq/new", ".wh.dir", "file", "etc/added"),
		layer(t, "etc/hl=>etc/keep", "./etc/again", "etc/.wh.again"),
	)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"manifest", "rootfs/", "rootfs/etc/", "rootfs/etc/keep", "rootfs/opq/", "rootfs/opq/new", "rootfs/file", "rootfs/etc/added",
		"rootfs/etc/hl>rootfs/etc/keep", "rootfs/etc/again"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("flattened:\n got %v\nwant %v", got, want)
	}
}

func TestFlattenDirReplacedByFile(t *testing.T) {
	got, err := flatten(t, layer(t, "a/", "a/b", "c"), layer(t, "a"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if strings.Join(got, " ") != "manifest rootfs/ rootfs/a rootfs/c" {
		t.Fatalf("got %v", got)
	}
}

func TestFlattenRefusesEscapes(t *testing.T) {
	for _, l := range []memLayer{
		layer(t, "../evil"),
		layer(t, "a/../../evil"),
		layer(t, "/etc/passwd"),
		layer(t, "etc/.wh.."),
		layer(t, "../.wh.etc"),
		layer(t, "/.wh.etc"),
		layer(t, "x=>../../etc/shadow"),
	} {
		_, err := flatten(t, l)
		if !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("want ErrInvalid, got %v", err)
		}
	}
}

func TestFlattenSizeLimit(t *testing.T) {
	big := layer(t, strings.Repeat("x", 10000))
	var out bytes.Buffer
	cfg := &v1.ConfigFile{}
	err := Convert(context.Background(), cfg, []Layer{big}, Info{Name: "example.com/t"}, &out, 4096)
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "larger than the limit") {
		t.Fatalf("got %v", err)
	}
}

func TestResolveUser(t *testing.T) {
	db := map[string][]byte{
		"etc/passwd": []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n"),
		"etc/group":  []byte("root:x:0:\napps:x:1001:\nstaff:x:50:\n"),
	}
	for spec, want := range map[string]string{
		"": "0:0", "app": "1000:1001", "1000": "1000:1001", "1000:50": "1000:50",
		"app:staff": "1000:50", "42": "42:0", "ghost": "ghost:0",
	} {
		u, g := resolveUser(spec, db)
		if u+":"+g != want {
			t.Errorf("%q: got %s:%s, want %s", spec, u, g, want)
		}
	}
}
