package aci

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"unicode"

	"github.com/appc/spec/schema"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// MaxEntries bounds the number of entries in one image, so that a hostile
// tar cannot exhaust memory through the bookkeeping Check does per entry.
const MaxEntries = 1 << 22

// cleanName validates a tar entry name and returns it cleaned: "manifest",
// "rootfs" or "rootfs/<path>". A leading "./" and a trailing "/" are
// accepted; absolute names, ".." components and anything outside the two
// top-level entries are not.
func cleanName(raw string) (string, error) {
	name := strings.TrimPrefix(raw, "./")
	switch {
	case name == "" || name == ".":
		return "", entryError(raw, "empty name")
	case strings.HasPrefix(name, "/"):
		return "", entryError(raw, "absolute name")
	case strings.ContainsRune(name, 0):
		return "", entryError(raw, "name contains a NUL byte")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", entryError(raw, "path escapes the image root")
		}
	}
	name = path.Clean(name)
	if name != ManifestName && name != RootfsName && !strings.HasPrefix(name, RootfsName+"/") {
		return "", entryError(raw, "not %q or below %q", ManifestName, RootfsName+"/")
	}
	return name, nil
}

// entryType returns the kind of a tar entry, folding the spellings of a
// regular file into tar.TypeReg; ok is false for kinds an ACI may not hold.
func entryType(hdr *tar.Header) (byte, bool) {
	switch hdr.Typeflag {
	case tar.TypeReg: // archive/tar reads the old TypeRegA spelling as TypeReg
		return tar.TypeReg, true
	case tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return hdr.Typeflag, true
	}
	return 0, false
}

// isSparse reports whether an entry is a GNU sparse file. Those are
// refused: their holes would be written out as zeroes, so a few bytes of
// tar could fill a disk.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// tarError classifies an error from reading a tar stream: malformed or
// truncated archives are ErrInvalid, anything else (I/O) is passed on.
func tarError(err error) error {
	if errors.Is(err, errdefs.ErrInvalid) {
		return fmt.Errorf("reading tar: %w", err)
	}
	if errors.Is(err, tar.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, tar.ErrFieldTooLong) {
		return fmt.Errorf("reading tar: %w: %w", err, errdefs.ErrInvalid)
	}
	return fmt.Errorf("reading tar: %w", err)
}

// parseManifest reads and validates the manifest entry.
func parseManifest(name string, hdr *tar.Header, r io.Reader) (*schema.ImageManifest, error) {
	if typ, _ := entryType(hdr); typ != tar.TypeReg {
		return nil, entryError(name, "manifest is not a regular file")
	}
	if hdr.Size > MaxManifestSize {
		return nil, entryError(name, "manifest is %d bytes, more than the %d allowed", hdr.Size, MaxManifestSize)
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxManifestSize+1))
	if err != nil {
		return nil, tarError(err)
	}
	return decodeManifest(name, data)
}

// decodeManifest parses the manifest entry of a tar.
func decodeManifest(name string, data []byte) (*schema.ImageManifest, error) {
	im, err := DecodeManifest(data)
	if err != nil {
		return nil, fmt.Errorf("tar entry %q: %w", name, err)
	}
	return im, nil
}

// DecodeManifest parses an image manifest; schema validates acKind,
// acVersion, the name, labels and the rest as it decodes. Errors are
// ErrInvalid.
func DecodeManifest(data []byte) (*schema.ImageManifest, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("image manifest is %d bytes, more than the %d allowed: %w", len(data), MaxManifestSize, errdefs.ErrInvalid)
	}
	if err := checkImageIsolators(data); err != nil {
		return nil, fmt.Errorf("bad image manifest: %w", err)
	}
	var im schema.ImageManifest
	if err := UnmarshalAppc(data, &im); err != nil {
		return nil, fmt.Errorf("bad image manifest: %w", err)
	}
	if err := checkPrintable(&im); err != nil {
		return nil, fmt.Errorf("bad image manifest: %w", err)
	}
	return &im, nil
}

// UnmarshalAppc decodes JSON into one of appc's schema types. Those
// decoders trust their input in places (an isolator without a value is
// dereferenced), so a panic in them is turned into an ErrInvalid error:
// a hostile manifest must not crash orbit.
func UnmarshalAppc(data []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the appc schema decoder failed on it (%v): %w", r, errdefs.ErrInvalid)
		}
	}()
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(strings.Fields(err.Error()), " "), errdefs.ErrInvalid)
	}
	return nil
}

// Isolator is an isolator as written in a manifest, before appc decodes
// its value.
type Isolator struct {
	Name  string           `json:"name"`
	Value *json.RawMessage `json:"value"`
}

// CheckIsolatorValues refuses isolators without a value (missing or null),
// which appc's decoder cannot take; what names the isolators' owner.
func CheckIsolatorValues(what string, isolators []Isolator) error {
	for _, iso := range isolators {
		if iso.Value == nil {
			return fmt.Errorf("%s: isolator %q has no value: %w", what, iso.Name, errdefs.ErrInvalid)
		}
	}
	return nil
}

// checkImageIsolators applies CheckIsolatorValues to an image manifest's app.
func checkImageIsolators(data []byte) error {
	var m struct {
		App *struct {
			Isolators []Isolator `json:"isolators"`
		} `json:"app"`
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%s: %w", strings.Join(strings.Fields(err.Error()), " "), errdefs.ErrInvalid)
	}
	if m.App == nil {
		return nil
	}
	return CheckIsolatorValues("app", m.App.Isolators)
}

// checkPrintable refuses control characters (and invisible format
// characters such as bidi overrides) in what orbit prints about an image:
// its name, labels and annotations, and its dependencies' names and
// labels. A label holding a newline or an escape sequence could otherwise
// forge rows of `orbit image list` or rewrite the user's terminal.
func checkPrintable(im *schema.ImageManifest) error {
	check := func(what, s string) error {
		for _, r := range s {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				return fmt.Errorf("%s holds a control character (%U): %w", what, r, errdefs.ErrInvalid)
			}
		}
		return nil
	}
	errs := []error{check("the name", im.Name.String())}
	for _, l := range im.Labels {
		errs = append(errs, check(fmt.Sprintf("label %q", l.Name), l.Name.String()+l.Value))
	}
	for _, a := range im.Annotations {
		errs = append(errs, check(fmt.Sprintf("annotation %q", a.Name), a.Name.String()+a.Value))
	}
	for _, d := range im.Dependencies {
		errs = append(errs, check(fmt.Sprintf("dependency %q", d.ImageName), d.ImageName.String()))
		for _, l := range d.Labels {
			errs = append(errs, check(fmt.Sprintf("label %q of dependency %q", l.Name, d.ImageName), l.Name.String()+l.Value))
		}
	}
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// checker validates tar entries one at a time. It remembers the kind of
// every entry so far, to refuse hard links to unknown entries, entries below
// a non-directory and entries that change kind.
type checker struct {
	kinds    map[string]byte
	manifest *schema.ImageManifest
}

func newChecker() *checker {
	return &checker{kinds: make(map[string]byte)}
}

// entry checks one header; r is the entry's data, read only for the
// manifest. It returns the cleaned name.
func (c *checker) entry(hdr *tar.Header, r io.Reader) (string, error) {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return "", err
	}
	if isSparse(hdr) {
		return "", entryError(name, "sparse files are not supported")
	}
	typ, ok := entryType(hdr)
	if !ok {
		return "", entryError(name, "unsupported entry type %q", hdr.Typeflag)
	}
	if len(c.kinds) >= MaxEntries {
		return "", entryError(name, "image has more than %d entries", MaxEntries)
	}
	if prev, seen := c.kinds[name]; seen && prev != typ {
		return "", entryError(name, "appears again with a different type")
	}
	switch name {
	case ManifestName:
		if c.manifest != nil {
			return "", entryError(name, "second manifest")
		}
		im, err := parseManifest(name, hdr, r)
		if err != nil {
			return "", err
		}
		c.manifest = im
	case RootfsName:
		if typ != tar.TypeDir {
			return "", entryError(name, "rootfs is not a directory")
		}
	default:
		if err := c.rootfsEntry(name, typ, hdr); err != nil {
			return "", err
		}
	}
	c.kinds[name] = typ
	return name, nil
}

// rootfsEntry checks an entry below rootfs/.
func (c *checker) rootfsEntry(name string, typ byte, hdr *tar.Header) error {
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if k, ok := c.kinds[dir]; ok && k != tar.TypeDir {
			return entryError(name, "parent %q is not a directory", dir)
		}
	}
	switch typ {
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil || !strings.HasPrefix(target, RootfsName+"/") {
			return entryError(name, "hard link target %q is outside the image root", hdr.Linkname)
		}
		k, ok := c.kinds[target]
		switch {
		case target == name:
			return entryError(name, "hard link to itself")
		case !ok:
			return entryError(name, "hard link target %q is not an earlier entry", hdr.Linkname)
		case k == tar.TypeDir:
			return entryError(name, "hard link to directory %q", hdr.Linkname)
		}
	case tar.TypeSymlink:
		return checkSymlink(name, hdr.Linkname)
	}
	return nil
}

// checkSymlink refuses empty targets and relative targets that, resolved
// lexically from the link's directory, leave rootfs. Absolute targets are
// interpreted inside the image root, so they are allowed.
func checkSymlink(name, target string) error {
	switch {
	case target == "":
		return entryError(name, "empty symlink target")
	case strings.ContainsRune(target, 0):
		return entryError(name, "symlink target contains a NUL byte")
	case strings.HasPrefix(target, "/"):
		return nil
	}
	rel := strings.TrimPrefix(name, RootfsName+"/")
	resolved := path.Join(path.Dir(rel), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return entryError(name, "symlink target %q escapes the image root", target)
	}
	return nil
}

// Check reads a whole uncompressed ACI tar stream and validates it: only
// "manifest", "rootfs" and "rootfs/..." entries with clean relative names;
// regular files, directories, symlinks, hard links, devices and fifos only;
// hard links to earlier non-directory entries inside rootfs; no relative
// symlink leaving rootfs; no entry below a non-directory; no entry that
// changes kind; exactly one valid manifest of at most MaxManifestSize bytes.
// It returns the manifest. Every refusal wraps errdefs.ErrInvalid and names
// the entry.
func Check(tarStream io.Reader) (*schema.ImageManifest, error) {
	tr := tar.NewReader(tarStream)
	c := newChecker()
	if err := walkTar(tr, func(hdr *tar.Header) error {
		_, err := c.entry(hdr, tr)
		return err
	}); err != nil {
		return nil, err
	}
	if c.manifest == nil {
		return nil, fmt.Errorf("image has no manifest: %w", errdefs.ErrInvalid)
	}
	return c.manifest, nil
}

// walkTar calls fn for every entry of a tar stream but pax global headers,
// stopping at the first error; a broken stream is an ErrInvalid.
func walkTar(tr *tar.Reader, fn func(hdr *tar.Header) error) error {
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return tarError(err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		if err := fn(hdr); err != nil {
			return err
		}
	}
}

// ReadManifest scans an uncompressed ACI tar for its manifest and returns
// it, without validating the other entries. It stops at the manifest.
func ReadManifest(tarStream io.Reader) (*schema.ImageManifest, error) {
	tr := tar.NewReader(tarStream)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("image has no manifest: %w", errdefs.ErrInvalid)
		}
		if err != nil {
			return nil, tarError(err)
		}
		if path.Clean(strings.TrimPrefix(hdr.Name, "./")) == ManifestName {
			return parseManifest(ManifestName, hdr, tr)
		}
	}
}
