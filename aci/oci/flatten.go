package oci

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/orbit-containers/orbit/aci"
	"github.com/orbit-containers/orbit/internal/errdefs"
)

// Layer is one filesystem layer, opened as an uncompressed tar stream as
// often as flattening needs it (twice).
type Layer interface {
	Uncompressed() (io.ReadCloser, error)
}

const (
	whiteoutPrefix = ".wh."
	// opaqueMarker in a directory hides everything lower layers put in it.
	opaqueMarker = ".wh..wh..opq"
	// maxUserDBSize bounds how much of /etc/passwd and /etc/group is kept
	// to resolve the image's user.
	maxUserDBSize = 1 << 20
)

// pos is where an entry is: its layer and its index in the layer's tar.
type pos struct{ layer, index int }

func (p pos) before(q pos) bool {
	return p.layer < q.layer || (p.layer == q.layer && p.index < q.index)
}

// survivor is what the flattened filesystem holds at a path.
type survivor struct {
	// at is the entry that provides it; for a directory, where it first
	// appeared, so that it is written before anything lower layers put in
	// it.
	at  pos
	typ byte
	// hdr is, for a directory, the header of its topmost entry (whose mode
	// and owner win).
	hdr *tar.Header
}

// plan is the result of the first pass over the layers.
type plan struct {
	paths map[string]survivor
	// userDB holds the data of the surviving etc/passwd and etc/group.
	userDB map[string][]byte
}

type layerEntry struct {
	name string
	typ  byte
	hdr  *tar.Header // kept for directories only
}

// cleanLayerName validates a path from a layer (an entry's name, a hard
// link's target, what a whiteout names) and returns it relative to the
// root, cleaned. "" is the root itself.
func cleanLayerName(raw string) (string, error) {
	name := strings.TrimPrefix(raw, "./")
	switch {
	case strings.HasPrefix(name, "/"):
		return "", fmt.Errorf("layer entry %q: absolute name: %w", raw, errdefs.ErrInvalid)
	case strings.ContainsRune(name, 0):
		return "", fmt.Errorf("layer entry %q: name contains a NUL byte: %w", raw, errdefs.ErrInvalid)
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("layer entry %q: path escapes the image root: %w", raw, errdefs.ErrInvalid)
		}
	}
	name = path.Clean(name)
	if name == "." {
		return "", nil
	}
	return name, nil
}

func entryKind(hdr *tar.Header) (byte, error) {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return 0, fmt.Errorf("layer entry %q: sparse files are not supported: %w", hdr.Name, errdefs.ErrInvalid)
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return 0, fmt.Errorf("layer entry %q: sparse files are not supported: %w", hdr.Name, errdefs.ErrInvalid)
		}
	}
	switch hdr.Typeflag {
	case tar.TypeReg:
		return tar.TypeReg, nil
	case tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return hdr.Typeflag, nil
	}
	return 0, fmt.Errorf("layer entry %q: unsupported entry type %q: %w", hdr.Name, hdr.Typeflag, errdefs.ErrInvalid)
}

// budget counts uncompressed bytes read against the image size limit.
type budget struct {
	ctx   context.Context
	left  int64
	limit int64
}

type budgetReader struct {
	b *budget
	r io.Reader
}

func (r budgetReader) Read(p []byte) (int, error) {
	if err := r.b.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.r.Read(p)
	r.b.left -= int64(n)
	if r.b.left < 0 {
		return n, fmt.Errorf("image is larger than the limit of %s uncompressed: %w", formatSize(r.b.limit), errdefs.ErrInvalid)
	}
	return n, err
}

func formatSize(n int64) string {
	const gib = 1 << 30
	if n%gib == 0 {
		return fmt.Sprintf("%dGiB", n/gib)
	}
	return fmt.Sprintf("%dMiB", n>>20)
}

// planLayers reads every layer once, bottom up, and works out which entry
// of which layer provides each path of the flattened filesystem, with
// whiteouts and opaque directories applied as the OCI image spec says: a
// layer's whiteouts hide what lower layers hold, never what the same
// layer adds.
func planLayers(ctx context.Context, layers []Layer, limit int64) (*plan, error) {
	p := &plan{paths: make(map[string]survivor), userDB: make(map[string][]byte)}
	userData := make(map[pos][]byte)
	b := &budget{ctx: ctx, left: limit, limit: limit}
	total := 0
	for li, l := range layers {
		var entries []layerEntry
		var whiteouts []string // paths hidden, with everything below them
		var opaques []string   // directories whose lower contents are hidden
		err := readLayer(l, b, func(idx int, hdr *tar.Header, r io.Reader) error {
			total++
			if total > aci.MaxEntries {
				return fmt.Errorf("image has more than %d entries: %w", aci.MaxEntries, errdefs.ErrInvalid)
			}
			name, err := cleanLayerName(hdr.Name)
			if err != nil {
				return err
			}
			base := path.Base(name)
			dir := path.Dir(name)
			if dir == "." {
				dir = ""
			}
			switch {
			case name == "":
				entries = append(entries, layerEntry{}) // the root: keeps indexes aligned
				return nil
			case base == opaqueMarker:
				opaques = append(opaques, dir)
				entries = append(entries, layerEntry{})
				return nil
			case strings.HasPrefix(base, whiteoutPrefix+whiteoutPrefix):
				// Reserved by the spec for other markers (aufs' hard
				// link directories): not part of the filesystem.
				entries = append(entries, layerEntry{})
				return nil
			case strings.HasPrefix(base, whiteoutPrefix):
				target := strings.TrimPrefix(base, whiteoutPrefix)
				if target == "" || target == "." || target == ".." {
					return fmt.Errorf("layer entry %q: whiteout names no file: %w", hdr.Name, errdefs.ErrInvalid)
				}
				whiteouts = append(whiteouts, path.Join(dir, target))
				entries = append(entries, layerEntry{})
				return nil
			}
			typ, err := entryKind(hdr)
			if err != nil {
				return err
			}
			if typ == tar.TypeLink {
				if _, err := cleanLayerName(hdr.Linkname); err != nil {
					return fmt.Errorf("layer entry %q: hard link target: %w", hdr.Name, err)
				}
			}
			e := layerEntry{name: name, typ: typ}
			if typ == tar.TypeDir {
				h := *hdr
				e.hdr = &h
			}
			if typ == tar.TypeReg && (name == "etc/passwd" || name == "etc/group") {
				data, err := io.ReadAll(io.LimitReader(r, maxUserDBSize))
				if err != nil {
					return err
				}
				userData[pos{li, idx}] = data
			}
			entries = append(entries, e)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", li+1, err)
		}
		p.hide(whiteouts, opaques)
		for idx, e := range entries {
			if e.name == "" {
				continue
			}
			at := pos{li, idx}
			prev, had := p.paths[e.name]
			if e.typ == tar.TypeDir && had && prev.typ == tar.TypeDir {
				prev.hdr = e.hdr
				p.paths[e.name] = prev
				continue
			}
			if had && prev.typ == tar.TypeDir {
				// A directory replaced by something else takes its
				// contents with it.
				p.hide([]string{e.name}, nil)
			}
			p.paths[e.name] = survivor{at: at, typ: e.typ, hdr: e.hdr}
		}
	}
	for _, name := range []string{"etc/passwd", "etc/group"} {
		if s, ok := p.paths[name]; ok && s.typ == tar.TypeReg {
			p.userDB[name] = userData[s.at]
		}
	}
	return p, nil
}

// hide removes whiteouts (with everything below them) and the contents of
// opaque directories from the plan, in one pass over it.
func (p *plan) hide(whiteouts, opaques []string) {
	if len(whiteouts) == 0 && len(opaques) == 0 {
		return
	}
	gone := make(map[string]bool, len(whiteouts))
	for _, w := range whiteouts {
		gone[w] = true
	}
	emptied := make(map[string]bool, len(opaques))
	for _, o := range opaques {
		emptied[o] = true
	}
	for name := range p.paths {
		if gone[name] {
			delete(p.paths, name)
			continue
		}
		for dir := path.Dir(name); ; dir = path.Dir(dir) {
			if dir == "." {
				dir = ""
			}
			if gone[dir] || emptied[dir] {
				delete(p.paths, name)
				break
			}
			if dir == "" {
				break
			}
		}
	}
}

// readLayer calls fn for each entry of a layer's tar stream.
func readLayer(l Layer, b *budget, fn func(idx int, hdr *tar.Header, r io.Reader) error) error {
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	tr := tar.NewReader(budgetReader{b: b, r: rc})
	for idx := 0; ; idx++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			// Read to the end: the padding after the end-of-archive
			// marker is part of the layer, and of its digest.
			if _, err := io.Copy(io.Discard, budgetReader{b: b, r: rc}); err != nil {
				return tarError(err)
			}
			return nil
		}
		if err != nil {
			return tarError(err)
		}
		if err := fn(idx, hdr, tr); err != nil {
			return err
		}
	}
}

func tarError(err error) error {
	if errors.Is(err, errdefs.ErrInvalid) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, tar.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, tar.ErrFieldTooLong) {
		return fmt.Errorf("reading layer: %w: %w", err, errdefs.ErrInvalid)
	}
	return fmt.Errorf("reading layer: %w", err)
}

// writeRootfs reads the layers a second time and writes the surviving
// entries, below rootfs/, to tw: lower layers first, so that directories
// come before what they hold and hard link targets before their links.
func writeRootfs(ctx context.Context, layers []Layer, p *plan, tw *tar.Writer, limit int64) error {
	b := &budget{ctx: ctx, left: limit, limit: limit}
	for li, l := range layers {
		err := readLayer(l, b, func(idx int, hdr *tar.Header, r io.Reader) error {
			name, err := cleanLayerName(hdr.Name)
			if err != nil || name == "" {
				return err
			}
			s, ok := p.paths[name]
			if !ok || s.at != (pos{li, idx}) {
				return nil
			}
			out := *hdr
			if s.typ == tar.TypeDir {
				out = *s.hdr
			}
			out.Name = aci.RootfsName + "/" + name
			if s.typ == tar.TypeDir {
				out.Name += "/"
			}
			out.Typeflag = s.typ
			if s.typ == tar.TypeLink {
				target, _ := cleanLayerName(hdr.Linkname)
				ts, ok := p.paths[target]
				if !ok || !ts.at.before(s.at) || ts.typ == tar.TypeDir {
					return fmt.Errorf("layer entry %q: hard link target %q is not in the image: %w", hdr.Name, hdr.Linkname, errdefs.ErrInvalid)
				}
				out.Linkname = aci.RootfsName + "/" + target
			}
			if s.typ != tar.TypeReg {
				out.Size = 0
			}
			if err := tw.WriteHeader(&out); err != nil {
				return err
			}
			if s.typ == tar.TypeReg {
				if _, err := io.Copy(tw, r); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("layer %d: %w", li+1, err)
		}
	}
	return nil
}
