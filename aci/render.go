package aci

import (
	"archive/tar"
	"bufio"
	"crypto/sha512"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// MaxDependencies bounds how many images (counting repeats) one rendered
// image may be made of, so a hostile dependency graph cannot blow up.
const MaxDependencies = 256

// Registry is what rendering needs from an image store.
type Registry interface {
	// Manifest returns the manifest of the image with a full image ID
	// ("sha512-" and 128 hex digits), or errdefs.ErrNotFound.
	Manifest(id string) (*schema.ImageManifest, error)
	// ResolveName returns the ID of the newest stored image with that name
	// carrying all the labels, or errdefs.ErrNotFound.
	ResolveName(name types.ACIdentifier, labels types.Labels) (string, error)
	// OpenBlob opens the stored uncompressed tar of an image.
	OpenBlob(id string) (io.ReadCloser, error)
}

// MatchLabels reports whether have carries every label in want, with the
// same value: how appc matches a dependency's labels against an image.
func MatchLabels(have, want types.Labels) bool {
	for _, w := range want {
		if v, ok := have.Get(string(w.Name)); !ok || v != w.Value {
			return false
		}
	}
	return true
}

// layer is one image in the dependency tree.
type layer struct {
	id       string
	manifest *schema.ImageManifest
	parent   int // index of the image that depends on this one; -1 for the top
	children []int
}

// dependencyTree resolves id and its dependencies, depth first in manifest
// order. The result's first element is the image itself.
func dependencyTree(reg Registry, id string) ([]layer, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("image ID %q: %w", id, errdefs.ErrInvalid)
	}
	im, err := reg.Manifest(id)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", id, err)
	}
	tree := []layer{{id: id, manifest: im, parent: -1}}
	onPath := map[string]bool{}
	var visit func(i int) error
	visit = func(i int) error {
		onPath[tree[i].id] = true
		defer delete(onPath, tree[i].id)
		for _, dep := range tree[i].manifest.Dependencies {
			depID, depIm, err := resolveDependency(reg, tree[i].id, dep)
			if err != nil {
				return err
			}
			if onPath[depID] {
				return fmt.Errorf("image %s: dependency %s (%s) depends on the image itself: %w", tree[i].id, dep.ImageName, depID, errdefs.ErrInvalid)
			}
			if len(tree) >= MaxDependencies {
				return fmt.Errorf("image %s: more than %d images in its dependency tree: %w", id, MaxDependencies, errdefs.ErrInvalid)
			}
			tree = append(tree, layer{id: depID, manifest: depIm, parent: i})
			child := len(tree) - 1
			tree[i].children = append(tree[i].children, child)
			if err := visit(child); err != nil {
				return err
			}
		}
		return nil
	}
	if err := visit(0); err != nil {
		return nil, err
	}
	return tree, nil
}

// resolveDependency finds the stored image a dependency of image from
// names: by image ID when the dependency gives one (and then the stored
// image must carry the dependency's name and labels), else by name and
// labels.
func resolveDependency(reg Registry, from string, dep types.Dependency) (string, *schema.ImageManifest, error) {
	what := fmt.Sprintf("image %s: dependency %s", from, dep.ImageName)
	var id string
	if dep.ImageID != nil && !dep.ImageID.Empty() {
		id = dep.ImageID.String()
		if !ValidID(id) {
			return "", nil, fmt.Errorf("%s: imageID %q is not a full sha512 image ID: %w", what, id, errdefs.ErrInvalid)
		}
	} else {
		var err error
		if id, err = reg.ResolveName(dep.ImageName, dep.Labels); err != nil {
			return "", nil, fmt.Errorf("%s%s: %w", what, labelSuffix(dep.Labels), err)
		}
	}
	im, err := reg.Manifest(id)
	if err != nil {
		return "", nil, fmt.Errorf("%s (%s): %w", what, id, err)
	}
	if im.Name != dep.ImageName || !MatchLabels(im.Labels, dep.Labels) {
		return "", nil, fmt.Errorf("%s%s: stored image %s is %s%s: %w", what, labelSuffix(dep.Labels), id, im.Name, labelSuffix(im.Labels), errdefs.ErrInvalid)
	}
	return id, im, nil
}

func labelSuffix(l types.Labels) string {
	var b strings.Builder
	for _, x := range l {
		fmt.Fprintf(&b, ",%s=%s", x.Name, x.Value)
	}
	return b.String()
}

// DependencyChain returns the image IDs that make up the rendered image:
// the image first, then its dependencies depth first in manifest order
// (an image reached twice is listed twice). Cycles are ErrInvalid; a
// dependency that is not stored wraps ErrNotFound and is named.
//
// The order identifies the rendering; it is not the order of precedence.
// In appc a later dependency is laid down over an earlier one, so when two
// dependencies hold the same file the later one's wins, and the image's
// own files win over all of them.
func DependencyChain(reg Registry, id string) ([]string, error) {
	tree, err := dependencyTree(reg, id)
	if err != nil {
		return nil, err
	}
	chain := make([]string, len(tree))
	for i, l := range tree {
		chain[i] = l.id
	}
	return chain, nil
}

// precedence returns the tree's indices from the layer whose files win to
// the one whose files lose: an image before its dependencies, and a later
// dependency (with its own dependencies) before an earlier one.
func precedence(tree []layer) []int {
	var order []int
	var visit func(i int)
	visit = func(i int) {
		order = append(order, i)
		ch := tree[i].children
		for j := len(ch) - 1; j >= 0; j-- {
			visit(ch[j])
		}
	}
	visit(0)
	return order
}

// whitelist is one image's pathWhitelist as cleaned tar names, with the
// directories above them, which must stay for the paths to exist.
type whitelist struct {
	paths map[string]bool
	dirs  map[string]bool
}

func newWhitelist(pwl []string) *whitelist {
	if len(pwl) == 0 {
		return nil
	}
	w := &whitelist{paths: map[string]bool{}, dirs: map[string]bool{}}
	for _, p := range pwl {
		name := path.Join(RootfsName, path.Clean("/"+p))
		w.paths[name] = true
		for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
			w.dirs[d] = true
		}
	}
	return w
}

func (w *whitelist) allows(name string, typ byte) bool {
	return w.paths[name] || (typ == tar.TypeDir && w.dirs[name])
}

// layerPlan is what to extract from one layer: entries kept under their
// own name, and entries whose data moves to a hard link of theirs because
// their own name is hidden (by an upper image or a whitelist).
type layerPlan struct {
	keep  map[string]bool
	moved map[string]string
}

func (p *layerPlan) route(name string, _ *tar.Header) (string, bool) {
	if dst, ok := p.moved[name]; ok {
		return dst, true
	}
	return name, p.keep[name]
}

// planner decides, layer by layer from the top, which entries appear in
// the rendered tree.
type planner struct {
	provided map[string]byte // entries taken from upper layers, by kind
}

// plan reads one layer's headers and decides what to take from it. top
// says whether this is the rendered image itself (whose manifest is kept);
// wls are the whitelists of the layer and of every image above it.
func (pl *planner) plan(tr *tar.Reader, top bool, wls []*whitelist) (*layerPlan, error) {
	p := &layerPlan{keep: map[string]bool{}, moved: map[string]string{}}
	mine := map[string]byte{}
	c := newChecker()
	if err := walkTar(tr, func(hdr *tar.Header) error {
		name, err := c.entry(hdr, tr)
		if err != nil {
			return err
		}
		typ, _ := entryType(hdr)
		if name == ManifestName {
			p.keep[name] = top
			return nil
		}
		if !pl.visible(name, typ, wls) {
			if typ == tar.TypeLink {
				return nil
			}
			p.keep[name] = false
			return nil
		}
		if typ == tar.TypeLink {
			target, _ := cleanName(hdr.Linkname)
			if !p.keep[target] {
				if _, moved := p.moved[target]; !moved {
					// The data's own name is hidden: write it here instead.
					p.moved[target] = name
				}
			}
		}
		p.keep[name] = true
		mine[name] = typ
		return nil
	}); err != nil {
		return nil, err
	}
	for name, typ := range mine {
		pl.provided[name] = typ
	}
	return p, nil
}

// visible says whether an entry of the current layer shows in the rendered
// tree: every whitelist from its image up allows it, no upper layer has
// the same path, and no upper layer has a non-directory above it.
func (pl *planner) visible(name string, typ byte, wls []*whitelist) bool {
	if name != RootfsName {
		for _, w := range wls {
			if w != nil && !w.allows(name, typ) {
				return false
			}
		}
	}
	if _, ok := pl.provided[name]; ok {
		return false
	}
	for d := path.Dir(name); d != "." && d != RootfsName; d = path.Dir(d) {
		if k, ok := pl.provided[d]; ok && k != tar.TypeDir {
			return false
		}
	}
	return true
}

// verifiedBlob reads an image's blob while hashing it, the hashing on a
// goroutine of its own (AsyncHash).
type verifiedBlob struct {
	id string
	rc io.ReadCloser
	h  *AsyncHash
	r  io.Reader
}

func openVerified(reg Registry, id string) (*verifiedBlob, error) {
	rc, err := reg.OpenBlob(id)
	if err != nil {
		return nil, err
	}
	h := NewAsyncHash(sha512.New())
	return &verifiedBlob{id: id, rc: rc, h: h, r: io.TeeReader(bufio.NewReaderSize(rc, 1<<20), h)}, nil
}

// finish reads the rest of the blob and compares its hash with its ID.
func (b *verifiedBlob) finish() error {
	if _, err := io.Copy(io.Discard, b.r); err != nil {
		return err
	}
	if got := ImageID(b.h.Sum()); got != b.id {
		return fmt.Errorf("stored data hashes to %s: %w", got, errdefs.ErrInvalid)
	}
	return nil
}

// close closes the blob and ends its hasher.
func (b *verifiedBlob) close() {
	b.h.Stop()
	b.rc.Close()
}

// RenderOptions tune Render.
type RenderOptions struct {
	// Verify hashes every blob while it is extracted, on a goroutine of
	// its own, and fails the render if one does not match its ID. Without
	// it the blobs are trusted as the store's content-addressed files: they
	// were verified when they entered the store, and only root can change
	// them since (see "What is durable" and "The store" in
	// Documentation/design.md). A truncated blob still fails the render:
	// its tar ends early.
	Verify bool
}

// Render renders the image id and its dependencies into dest: dest/manifest
// is the image's own manifest, dest/rootfs the union of the layers'. Files
// of an upper image win over a lower one's (see DependencyChain for the
// order); a lower image's entry below a path that an upper image holds as
// a non-directory is dropped. An entry shows only if the pathWhitelist of
// its own image and of every image above it allow it (directories above a
// whitelisted path are allowed). With opts.Verify every blob is hashed
// while it is extracted and must match its ID.
// It returns the chain, as DependencyChain does. dest should be a fresh
// directory; on error it holds a partial tree the caller removes. Nothing
// is made durable: a caller that needs the tree to survive a crash (the
// store's rendered trees) syncs it before it marks it complete.
func Render(reg Registry, id string, dest string, opts RenderOptions) (chain []string, err error) {
	tree, err := dependencyTree(reg, id)
	if err != nil {
		return nil, err
	}
	order := precedence(tree)
	pl := &planner{provided: map[string]byte{}}
	plans := make([]*layerPlan, len(tree))
	for _, i := range order {
		var wls []*whitelist
		for j := i; j >= 0; j = tree[j].parent {
			wls = append(wls, newWhitelist(tree[j].manifest.PathWhitelist))
		}
		// Planning reads the tar's headers without hashing it: what it
		// decides only routes entries of the extraction pass below (which,
		// verifying, hashes what it writes and fails, leaving dest for the
		// caller to remove, if that differs from the ID). It seeks over
		// the files' data where the blob is a file.
		rc, err := reg.OpenBlob(tree[i].id)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", tree[i].id, err)
		}
		plans[i], err = pl.plan(tar.NewReader(newSkimReader(rc)), i == 0, wls)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", tree[i].id, err)
		}
	}
	for _, i := range order {
		if opts.Verify {
			err = renderVerified(reg, tree[i].id, dest, plans[i])
		} else {
			err = renderTrusted(reg, tree[i].id, dest, plans[i])
		}
		if err != nil {
			return nil, fmt.Errorf("rendering image %s: %w", tree[i].id, err)
		}
	}
	chain = make([]string, len(tree))
	for i, l := range tree {
		chain[i] = l.id
	}
	return chain, nil
}

func renderVerified(reg Registry, id, dest string, plan *layerPlan) error {
	b, err := openVerified(reg, id)
	if err != nil {
		return err
	}
	defer b.close()
	if err := extract(b.r, dest, extractOptions{route: plan.route, check: true}); err != nil {
		return err
	}
	return b.finish()
}

func renderTrusted(reg Registry, id, dest string, plan *layerPlan) error {
	rc, err := reg.OpenBlob(id)
	if err != nil {
		return err
	}
	defer rc.Close()
	return extract(bufio.NewReaderSize(rc, 1<<20), dest, extractOptions{route: plan.route, check: true})
}

// skimReader is a buffered reader of a blob that also seeks forward, so
// that a tar.Reader walking only the headers skips the files' data with
// a seek rather than reading it, yet reads the headers from a buffer.
type skimReader struct {
	f   io.ReadSeeker // nil when the blob cannot seek
	br  *bufio.Reader
	pos int64
}

func newSkimReader(r io.Reader) io.Reader {
	f, ok := r.(io.ReadSeeker)
	if !ok {
		return bufio.NewReaderSize(r, 1<<16)
	}
	if _, err := f.Seek(0, io.SeekCurrent); err != nil {
		return bufio.NewReaderSize(r, 1<<16)
	}
	return &skimReader{f: f, br: bufio.NewReaderSize(f, 1<<16)}
}

func (s *skimReader) Read(p []byte) (int, error) {
	n, err := s.br.Read(p)
	s.pos += int64(n)
	return n, err
}

// Seek moves forward from the current position only, which is all that
// archive/tar asks of it.
func (s *skimReader) Seek(off int64, whence int) (int64, error) {
	if whence != io.SeekCurrent || off < 0 {
		return s.pos, fmt.Errorf("skimReader: only forward seeks from the current position: %w", errdefs.ErrInvalid)
	}
	if b := int64(s.br.Buffered()); off <= b {
		s.br.Discard(int(off))
	} else {
		if _, err := s.f.Seek(off-b, io.SeekCurrent); err != nil {
			return s.pos, err
		}
		s.br.Reset(s.f)
	}
	s.pos += off
	return s.pos, nil
}
