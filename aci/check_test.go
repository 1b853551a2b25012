package aci

import (
	"archive/tar"
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func TestCheckValid(t *testing.T) {
	im, err := Check(bytes.NewReader(simpleImage(t)))
	if err != nil {
		t.Fatal(err)
	}
	if im.Name != "example.com/simple" {
		t.Errorf("name %q", im.Name)
	}
	if v, _ := im.GetLabel("os"); v != "linux" {
		t.Errorf("os label %q", v)
	}
}

func TestCheckAcceptsDotSlashAndGlobalHeaders(t *testing.T) {
	m := manifestEnt(t, "example.com/dot")
	m.hdr.Name = "./manifest"
	img := buildTar(t,
		ent{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header", PAXRecords: map[string]string{"comment": "x"}}},
		m, dir("./rootfs/"), file("./rootfs/a", "a"))
	if _, err := Check(bytes.NewReader(img)); err != nil {
		t.Fatal(err)
	}
}

func TestCheckRefusesHostileInput(t *testing.T) {
	man := manifestEnt(t, "example.com/hostile")
	huge := file("manifest", `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"a","x":"`+strings.Repeat("x", MaxManifestSize)+`"}`)
	dev := func(name string, typ byte) ent {
		return ent{hdr: tar.Header{Name: name, Typeflag: typ, Mode: 0o600, Devmajor: 1, Devminor: 3}}
	}
	for _, tc := range []struct {
		name    string
		entries []ent
		want    []string
	}{
		{"dotdot name", []ent{man, file("rootfs/../etc/passwd", "x")}, []string{`"rootfs/../etc/passwd"`, "escapes the image root"}},
		{"dotdot inside", []ent{man, file("rootfs/a/../../b", "x")}, []string{"escapes the image root"}},
		{"absolute name", []ent{man, file("/etc/passwd", "x")}, []string{`"/etc/passwd"`, "absolute"}},
		{"outside rootfs", []ent{man, file("etc/passwd", "x")}, []string{`"etc/passwd"`}},
		{"hard link out", []ent{man, hardlink("rootfs/shadow", "/etc/shadow")}, []string{`"rootfs/shadow"`, "outside the image root"}},
		{"hard link dotdot", []ent{man, hardlink("rootfs/shadow", "rootfs/../../etc/shadow")}, []string{"outside the image root"}},
		{"hard link to manifest", []ent{man, hardlink("rootfs/m", "manifest")}, []string{"outside the image root"}},
		{"hard link forward", []ent{man, hardlink("rootfs/a", "rootfs/b"), file("rootfs/b", "b")}, []string{"not an earlier entry"}},
		{"hard link to dir", []ent{man, dir("rootfs/d"), hardlink("rootfs/a", "rootfs/d")}, []string{"directory"}},
		{"relative symlink escape", []ent{man, symlink("rootfs/a/evil", "../../../etc")}, []string{`"rootfs/a/evil"`, "escapes the image root"}},
		{"symlink then write through it", []ent{man, symlink("rootfs/evil", "/etc"), file("rootfs/evil/passwd", "root::0:0::/:/bin/sh")}, []string{`"rootfs/evil/passwd"`, "not a directory"}},
		{"symlink replaced by dir", []ent{man, symlink("rootfs/x", "/etc"), dir("rootfs/x")}, []string{`"rootfs/x"`, "different type"}},
		{"empty symlink", []ent{man, symlink("rootfs/x", "")}, []string{"empty symlink"}},
		{"rootfs is a symlink", []ent{man, symlink("rootfs", "/")}, []string{"rootfs is not a directory"}},
		{"manifest is a symlink", []ent{symlink("manifest", "/etc/passwd")}, []string{"not a regular file"}},
		{"second manifest", []ent{man, man}, []string{"second manifest"}},
		{"huge manifest", []ent{huge}, []string{"manifest", "bytes"}},
		{"missing manifest", []ent{dir("rootfs"), file("rootfs/a", "a")}, []string{"no manifest"}},
		{"manifest bad name", []ent{file("manifest", `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"Not A Name!"}`)}, []string{`"manifest"`, "bad image manifest"}},
		{"manifest bad kind", []ent{file("manifest", `{"acKind":"PodManifest","acVersion":"0.8.11","name":"a"}`)}, []string{"bad image manifest"}},
		{"manifest not json", []ent{file("manifest", `{`)}, []string{"bad image manifest"}},
		{"socket-like type", []ent{man, {hdr: tar.Header{Name: "rootfs/x", Typeflag: 'Z'}}}, []string{"unsupported entry type"}},
		{"char device under symlink", []ent{man, symlink("rootfs/dev", "/"), dev("rootfs/dev/mem", tar.TypeChar)}, []string{"not a directory"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Check(bytes.NewReader(buildTar(t, tc.entries...)))
			wantInvalid(t, err, tc.want...)
		})
	}
}

func TestCheckAllowsDevicesAndFifos(t *testing.T) {
	img := buildTar(t, manifestEnt(t, "example.com/dev"), dir("rootfs"), dir("rootfs/dev"),
		ent{hdr: tar.Header{Name: "rootfs/dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}},
		ent{hdr: tar.Header{Name: "rootfs/dev/loop0", Typeflag: tar.TypeBlock, Mode: 0o660, Devmajor: 7}},
		ent{hdr: tar.Header{Name: "rootfs/dev/fifo", Typeflag: tar.TypeFifo, Mode: 0o600}},
	)
	if _, err := Check(bytes.NewReader(img)); err != nil {
		t.Fatal(err)
	}
}

func TestCheckTruncated(t *testing.T) {
	img := buildTar(t, manifestEnt(t, "example.com/cut"), file("rootfs/big", strings.Repeat("x", 10000)))
	_, err := Check(bytes.NewReader(img[:5000]))
	wantInvalid(t, err)
}

func TestReadManifest(t *testing.T) {
	img := buildTar(t, dir("rootfs"), file("rootfs/a", "a"), manifestEnt(t, "example.com/late"))
	im, err := ReadManifest(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if im.Name != "example.com/late" {
		t.Errorf("name %q", im.Name)
	}
	_, err = ReadManifest(bytes.NewReader(buildTar(t, dir("rootfs"))))
	if !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("no manifest: %v", err)
	}
}

func TestValidID(t *testing.T) {
	good := "sha512-" + strings.Repeat("0a", 64)
	for s, want := range map[string]bool{
		good:                                 true,
		strings.ToUpper(good):                false,
		"sha512-" + strings.Repeat("A", 128): false,
		"sha512-" + strings.Repeat("a", 127): false,
		"sha256-" + strings.Repeat("a", 128): false,
		"sha512-" + strings.Repeat("g", 128): false,
		"":                                   false,
	} {
		if got := ValidID(s); got != want {
			t.Errorf("ValidID(%q) = %v", s, got)
		}
	}
}

func TestDecodeManifestRefusesControlCharacters(t *testing.T) {
	const head = `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/x"`
	for name, m := range map[string]string{
		"newline in a label":      head + `,"labels":[{"name":"version","value":"1\nforged"}]}`,
		"escape in an annotation": head + `,"annotations":[{"name":"example.com/a","value":"\u001b[2J"}]}`,
		"bidi override":           head + `,"labels":[{"name":"version","value":"1\u202e"}]}`,
		"tab in a dependency":     head + `,"dependencies":[{"imageName":"example.com/d","labels":[{"name":"version","value":"\t"}]}]}`,
	} {
		if _, err := DecodeManifest([]byte(m)); !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "control character") {
			t.Errorf("%s: %v", name, err)
		}
	}
	ok := head + `,"labels":[{"name":"version","value":"1.0 ünïcode"}],"annotations":[{"name":"example.com/a","value":"plain text, 日本"}]}`
	if _, err := DecodeManifest([]byte(ok)); err != nil {
		t.Errorf("printable labels refused: %v", err)
	}
}

// An isolator without a value made appc's decoder dereference a nil
// pointer: a hostile image crashed orbit at fetch.
func TestDecodeManifestRefusesIsolatorWithoutValue(t *testing.T) {
	const head = `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/x","app":{"exec":["/bin/sh"],"user":"0","group":"0","isolators":[`
	for name, iso := range map[string]string{
		"missing value": `{"name":"resource/memory"}`,
		"null value":    `{"name":"os/linux/capabilities-retain-set","value":null}`,
	} {
		_, err := DecodeManifest([]byte(head + iso + `]}}`))
		if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "has no value") {
			t.Errorf("%s: %v", name, err)
		}
	}
	good := head + `{"name":"resource/memory","value":{"limit":"64M"}}]}}`
	if _, err := DecodeManifest([]byte(good)); err != nil {
		t.Errorf("a valid isolator refused: %v", err)
	}
}

// UnmarshalAppc turns a panic in a schema decoder into ErrInvalid.
func TestUnmarshalAppcRecovers(t *testing.T) {
	var v panicky
	if err := UnmarshalAppc([]byte(`{}`), &v); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("got %v", err)
	}
}

type panicky struct{}

func (*panicky) UnmarshalJSON([]byte) error { panic("boom") }
