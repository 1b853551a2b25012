package aci

import (
	"archive/tar"
	"io"
	"strings"
)

// ExtractLayer writes a filesystem layer (a tar whose names are relative
// to the root, as in OCI layers) into dest/rootfs with Extract's care:
// modes, owners, times, allowed extended attributes, devices, hard links,
// and every path resolved inside dest/rootfs. rewrite sees each header
// first and returns the one to write, its Name and a hard link's Linkname
// still relative to the root, or nil to skip the entry; the result is then
// held to the checks of an ACI entry (no absolute or escaping names or
// symlink targets, no sparse files), and a hard link must name an entry
// written before it in the same layer.
func ExtractLayer(tarStream io.Reader, dest string, rewrite func(hdr *tar.Header) (*tar.Header, error)) error {
	written := map[string]bool{}
	wrap := func(hdr *tar.Header) (*tar.Header, error) {
		h, err := rewrite(hdr)
		if err != nil || h == nil {
			return nil, err
		}
		if isSparse(h) {
			return nil, entryError(h.Name, "sparse files are not supported")
		}
		name, err := cleanName(RootfsName + "/" + strings.TrimPrefix(h.Name, "./"))
		if err != nil {
			return nil, err
		}
		if _, ok := entryType(h); !ok {
			return nil, entryError(h.Name, "unsupported entry type %q", h.Typeflag)
		}
		out := *h
		out.Name = name
		switch h.Typeflag {
		case tar.TypeSymlink:
			if err := checkSymlink(out.Name, h.Linkname); err != nil {
				return nil, err
			}
		case tar.TypeLink:
			target, err := cleanName(RootfsName + "/" + strings.TrimPrefix(h.Linkname, "./"))
			if err != nil {
				return nil, err
			}
			if !written[target] || target == name {
				return nil, entryError(h.Name, "hard link target %q is not an earlier entry of the same layer", h.Linkname)
			}
			out.Linkname = target
		}
		written[name] = true
		return &out, nil
	}
	route := func(name string, _ *tar.Header) (string, bool) { return name, true }
	return extract(tarStream, dest, extractOptions{route: route, rewrite: wrap})
}
