// Package builtin describes orbit's built-in stage1 flavours and writes
// their images from the running orbit binary (see Documentation/design.md,
// "Built-in flavours").
package builtin

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// Flavour is a built-in stage1 flavour.
type Flavour int

// The flavours, a closed set.
const (
	Fly Flavour = iota + 1
	Nspawn
	KVM
)

// Flavours lists them in the order they are documented.
func Flavours() []Flavour { return []Flavour{Fly, Nspawn, KVM} }

func (f Flavour) String() string {
	switch f {
	case Fly:
		return "fly"
	case Nspawn:
		return "nspawn"
	case KVM:
		return "kvm"
	}
	return fmt.Sprintf("flavour(%d)", int(f))
}

// Available reports whether this orbit implements the flavour.
func (f Flavour) Available() bool { return f == Fly || f == Nspawn || f == KVM }

// namePrefix is the image name of a built-in stage1 without its flavour.
const namePrefix = "orbit.dev/stage1-"

// ImageName is the flavour's stage1 image name.
func (f Flavour) ImageName() types.ACIdentifier {
	return types.ACIdentifier(namePrefix + f.String())
}

// Parse accepts a flavour's short name ("fly"), its image name
// ("orbit.dev/stage1-fly", optionally with ":version"), or the name of
// rkt's image of the same kind ("coreos.com/rkt/stage1-fly",
// "coreos.com/rkt/stage1-coreos" for nspawn), so rkt unit files and
// scripts get orbit's own flavour.
func Parse(name string) (Flavour, bool) {
	base, _, _ := strings.Cut(name, ",")
	if n, rest, ok := strings.Cut(base, ":"); ok && strings.Contains(n, "/") && rest != "" {
		base = n // a version on an image name
	}
	for _, f := range Flavours() {
		if base == f.String() || base == string(f.ImageName()) {
			return f, true
		}
	}
	switch base {
	case "coreos.com/rkt/stage1-fly":
		return Fly, true
	case "coreos.com/rkt/stage1-coreos", "coreos.com/rkt/stage1":
		return Nspawn, true
	case "coreos.com/rkt/stage1-kvm":
		return KVM, true
	}
	return 0, false
}

// ParseFileName recognises the file names of rkt's stage1 images in its
// stage1 images directory (stage1-fly.aci, stage1-coreos.aci).
func ParseFileName(name string) (Flavour, bool) {
	switch name {
	case "stage1-fly.aci":
		return Fly, true
	case "stage1-coreos.aci", "stage1-nspawn.aci":
		return Nspawn, true
	case "stage1-kvm.aci":
		return KVM, true
	}
	return 0, false
}

// EntrypointPath is where, in the flavour's image, an entrypoint is: a link
// to /orbit named so the binary knows what to act as ("app/add" is
// /<flavour>/app-add).
func (f Flavour) EntrypointPath(e contract.Entrypoint) string {
	return "/" + f.String() + "/" + strings.ReplaceAll(string(e), "/", "-")
}

// Entrypoints lists the entrypoints the flavour's image names: nspawn
// also runs mutable pods (the app entrypoints).
func (f Flavour) Entrypoints() []contract.Entrypoint {
	eps := contract.Entrypoints()
	if f == Nspawn {
		eps = append(eps, contract.AppEntrypoints()...)
	}
	return eps
}

// Labels identify one build of a flavour's image.
func Labels(version, build string) types.Labels {
	return types.Labels{
		{Name: "version", Value: version},
		{Name: "build", Value: build},
		{Name: "os", Value: runtime.GOOS},
		{Name: "arch", Value: runtime.GOARCH},
	}
}

// Manifest is the image manifest of a flavour's stage1 image.
func Manifest(f Flavour, version, build string) *schema.ImageManifest {
	m := schema.BlankImageManifest()
	m.Name = f.ImageName()
	m.Labels = Labels(version, build)
	// In the order of their names: the same binary always gives the same
	// image ID.
	eps := f.Entrypoints()
	sort.Slice(eps, func(i, j int) bool { return eps[i].Annotation() < eps[j].Annotation() })
	for _, e := range eps {
		m.Annotations.Set(types.ACIdentifier(e.Annotation()), f.EntrypointPath(e))
	}
	m.Annotations.Set(contract.AnnotationInterfaceVersion, strconv.Itoa(contract.InterfaceVersion))
	return m
}

// Entry is one entry of a stage1 image's rootfs.
type Entry struct {
	Path string // inside rootfs, absolute
	// One of: Dir, Link (a symbolic link's target), Source (a host file to
	// copy) or Content (the file's bytes).
	Dir     bool
	Link    string
	Source  string
	Content []byte
	Mode    int64
}

// Entries lays out a flavour's rootfs: the binary that serves as its
// entrypoints and the stage2 launcher, links naming them, and what the
// flavour needs besides. That binary is stage1, the small standalone
// stage1 binary (cmd/orbit-stage1), at /orbit-stage1 when not nil, and
// otherwise the orbit binary itself (from exe) at /orbit. supervisor, when
// not nil, is the small standalone pod supervisor to use instead as the
// nspawn pod's PID 1.
func (f Flavour) Entries(exe string, supervisor, stage1 []byte) []Entry {
	dir := "/" + f.String()
	bin, e := "orbit", []Entry{{Path: "/orbit", Source: exe, Mode: 0o755}}
	// (nspawn without the standalone supervisor runs /orbit as PID 1, so
	// it keeps /orbit for everything.)
	if stage1 != nil && (f != Nspawn || supervisor != nil) {
		bin, e = "orbit-stage1", []Entry{{Path: "/orbit-stage1", Content: stage1, Mode: 0o755}}
	}
	e = append(e,
		Entry{Path: dir, Dir: true, Mode: 0o755},
		Entry{Path: "/stage2", Dir: true, Mode: 0o755},
		Entry{Path: "/stage2/launch", Link: "../" + bin},
	)
	for _, ep := range f.Entrypoints() {
		e = append(e, Entry{Path: f.EntrypointPath(ep), Link: "../" + bin})
	}
	if f == Nspawn {
		// systemd-nspawn wants something that looks like an OS tree.
		// The pod layout's directories (contract) and nspawn's own
		// (/orbit-pod).
		for _, d := range []string{"/usr", "/etc", "/proc", "/sys", "/dev", "/tmp", "/run", "/opt", contract.Stage1AppsDir, "/rkt", contract.Stage1StatusDir, contract.Stage1EnvDir, contract.Stage1VolumesDir, "/orbit-pod"} {
			e = append(e, Entry{Path: d, Dir: true, Mode: 0o755})
		}
		e = append(e, Entry{Path: "/etc/os-release", Content: []byte("ID=orbit-stage1\nNAME=\"orbit stage1\"\n"), Mode: 0o644})
	}
	if f == Nspawn || f == KVM {
		// The pod's PID 1: in the container, or the VM's /init.
		if supervisor != nil {
			e = append(e, Entry{Path: dir + "/supervisor", Content: supervisor, Mode: 0o755})
		} else {
			e = append(e, Entry{Path: dir + "/supervisor", Link: "../" + bin})
		}
	}
	if f == KVM {
		// The directories the stage1 rootfs needs as the VM's root.
		for _, d := range []string{"/proc", "/sys", "/dev", "/tmp", "/run", "/etc", "/opt", contract.Stage1AppsDir, "/rkt", contract.Stage1StatusDir, contract.Stage1EnvDir, contract.Stage1VolumesDir, "/orbit-pod"} {
			e = append(e, Entry{Path: d, Dir: true, Mode: 0o755})
		}
	}
	return e
}

// epoch is the fixed time of every entry, so the same binary always gives
// the same image (and so the same image ID).
var epoch = time.Unix(0, 0).UTC()

// WriteACI writes the flavour's stage1 image, uncompressed, with the given
// rootfs entries, parents before children.
func WriteACI(w io.Writer, f Flavour, version, build string, entries []Entry) error {
	m, err := json.Marshal(Manifest(f, version, build))
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	hdr := func(h *tar.Header) error {
		h.ModTime, h.Uid, h.Gid, h.Format = epoch, 0, 0, tar.FormatPAX
		return tw.WriteHeader(h)
	}
	if err := hdr(&tar.Header{Name: "manifest", Mode: 0o644, Size: int64(len(m)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := tw.Write(m); err != nil {
		return err
	}
	if err := hdr(&tar.Header{Name: "rootfs/", Mode: 0o755, Typeflag: tar.TypeDir}); err != nil {
		return err
	}
	for _, e := range entries {
		name := "rootfs/" + strings.TrimPrefix(e.Path, "/")
		switch {
		case e.Dir:
			err = hdr(&tar.Header{Name: name + "/", Mode: e.Mode, Typeflag: tar.TypeDir})
		case e.Link != "":
			err = hdr(&tar.Header{Name: name, Mode: 0o777, Typeflag: tar.TypeSymlink, Linkname: e.Link})
		case e.Source != "":
			err = addFile(tw, hdr, name, e)
		default:
			if err = hdr(&tar.Header{Name: name, Mode: e.Mode, Size: int64(len(e.Content)), Typeflag: tar.TypeReg}); err == nil {
				_, err = tw.Write(e.Content)
			}
		}
		if err != nil {
			return fmt.Errorf("stage1 image: %s: %w", e.Path, err)
		}
	}
	return tw.Close()
}

func addFile(tw *tar.Writer, hdr func(*tar.Header) error, name string, file Entry) error {
	src, err := os.Open(file.Source)
	if err != nil {
		return err
	}
	defer src.Close()
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	if err := hdr(&tar.Header{Name: name, Mode: file.Mode, Size: fi.Size(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	n, err := io.Copy(tw, src)
	if err != nil {
		return err
	}
	if n != fi.Size() {
		return fmt.Errorf("%s changed while being read", file.Source)
	}
	return nil
}

// BuildID returns the Go build ID recorded in an executable, which changes
// whenever its contents do.
func BuildID(exe string) (string, error) {
	f, err := elf.Open(exe)
	if err != nil {
		return "", fmt.Errorf("reading the build ID of %s: %w", exe, err)
	}
	defer f.Close()
	sec := f.Section(".note.go.buildid")
	if sec == nil {
		return "", fmt.Errorf("%s has no Go build ID: %w", exe, errdefs.ErrNotFound)
	}
	data, err := sec.Data()
	if err != nil {
		return "", err
	}
	// An ELF note: namesz, descsz, type (4 bytes each), name "Go\0\0", desc.
	if len(data) < 16 || !bytes.Equal(data[12:16], []byte("Go\x00\x00")) {
		return "", fmt.Errorf("%s: malformed Go build ID note: %w", exe, errdefs.ErrInvalid)
	}
	descsz := int(f.ByteOrder.Uint32(data[4:8]))
	if 16+descsz > len(data) {
		return "", fmt.Errorf("%s: malformed Go build ID note: %w", exe, errdefs.ErrInvalid)
	}
	return string(data[16 : 16+descsz]), nil
}
