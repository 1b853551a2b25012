package oci

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/aci"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/inroot"
)

// A layer tree is one layer extracted on its own, ready to be an overlayfs
// lower directory: dest/rootfs holds the layer's entries, an OCI whiteout
// (.wh.NAME) becomes overlayfs's whiteout (a character device 0:0 named
// NAME), and an opaque directory (.wh..wh..opq) gets overlayfs's
// trusted.overlay.opaque=y. Layer trees are merged by the kernel (overlay
// lower directories, top first) or by Flatten, with the same meaning.

// OpaqueXattr marks an overlayfs directory whose lower contents are hidden.
const OpaqueXattr = "trusted.overlay.opaque"

// ExtractLayer extracts a layer's uncompressed tar stream into dest (which
// gets dest/rootfs), converting whiteouts, and returns the stream's size.
// It reads r to its end, so that a checked layer (CheckedLayer) compares
// its diff ID; what it reads is taken from b. Entries escaping the root,
// whiteouts naming nothing, "." or "..", sparse files and hard links to
// other layers are refused with errdefs.ErrInvalid.
func ExtractLayer(ctx context.Context, r io.Reader, dest string, b *Budget) (int64, error) {
	var size int64
	br := budgetReader{ctx: ctx, b: b, r: r, n: &size}
	written := map[string]bool{}
	var opaques []string
	rewrite := func(hdr *tar.Header) (*tar.Header, error) {
		name, err := cleanLayerName(hdr.Name)
		if err != nil {
			return nil, err
		}
		if name == "" {
			return nil, nil // the root: kept as made
		}
		if len(written) >= aci.MaxEntries {
			return nil, fmt.Errorf("layer has more than %d entries: %w", aci.MaxEntries, errdefs.ErrInvalid)
		}
		base, dir := path.Base(name), path.Dir(name)
		if dir == "." {
			dir = ""
		}
		switch {
		case base == opaqueMarker:
			opaques = append(opaques, dir)
			return nil, nil
		case strings.HasPrefix(base, whiteoutPrefix+whiteoutPrefix):
			return nil, nil // reserved for other markers (aufs hard link dirs)
		case strings.HasPrefix(base, whiteoutPrefix):
			target := strings.TrimPrefix(base, whiteoutPrefix)
			if target == "" || target == "." || target == ".." || strings.ContainsRune(target, 0) {
				return nil, fmt.Errorf("layer entry %q: whiteout names no file: %w", hdr.Name, errdefs.ErrInvalid)
			}
			target = path.Join(dir, target)
			if written[target] {
				// A layer's whiteouts hide what lower layers hold, never
				// what the same layer adds.
				return nil, nil
			}
			written[target] = true
			return &tar.Header{Name: target, Typeflag: tar.TypeChar, Mode: 0, ModTime: hdr.ModTime, Format: tar.FormatPAX}, nil
		}
		if _, err := entryKind(hdr); err != nil {
			return nil, err
		}
		written[name] = true
		return hdr, nil
	}
	if err := aci.ExtractLayer(br, dest, rewrite); err != nil {
		return size, err
	}
	// The end-of-archive padding is part of the layer, and of its digest.
	if _, err := io.Copy(io.Discard, br); err != nil {
		return size, tarError(err)
	}
	if len(opaques) == 0 {
		return size, nil
	}
	root, err := inroot.OpenRoot(filepath.Join(dest, aci.RootfsName))
	if err != nil {
		return size, err
	}
	defer root.Close()
	for _, o := range opaques {
		fd, err := root.MkdirAll(o)
		if err == nil {
			unix.Close(fd)
			fd, err = root.Open(o, unix.O_RDONLY|unix.O_DIRECTORY)
		}
		if err != nil {
			return size, fmt.Errorf("layer: opaque directory %q: %w", o, err)
		}
		err = unix.Fsetxattr(fd, OpaqueXattr, []byte("y"), 0)
		unix.Close(fd)
		if err != nil {
			return size, fmt.Errorf("layer: marking %q opaque (the store's filesystem must take trusted.* attributes): %w", o, err)
		}
	}
	return size, nil
}

// isWhiteout says whether a layer tree's entry is an overlayfs whiteout.
func isWhiteout(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscallStat)
	return ok && fi.Mode()&fs.ModeCharDevice != 0 && st.Rdev == 0
}

// isOpaque says whether a layer tree's directory is opaque.
func isOpaque(dir string) bool {
	buf := make([]byte, 2)
	n, err := unix.Lgetxattr(dir, OpaqueXattr, buf)
	return err == nil && n == 1 && buf[0] == 'y'
}

// Flatten merges layer trees' root filesystems (lowers, top first, as
// overlayfs takes them) into dest, a directory that is created if missing:
// what the app sees through an overlay of them, as plain files. Whiteouts
// remove what lower layers put at their path; an opaque directory drops
// what lower layers put in it; a non-directory replaces a directory with
// everything below it. Owners, modes, times, devices, symlinks, extended
// attributes (user.* and security.capability) and hard links within a
// layer are kept.
func Flatten(ctx context.Context, lowers []string, dest string) error {
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	dirTimes := map[string][2]unix.Timespec{}
	for i := len(lowers) - 1; i >= 0; i-- {
		src := lowers[i]
		links := map[[2]uint64]string{}
		err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			rel, _ := filepath.Rel(src, p)
			dst := filepath.Join(dest, rel)
			fi, err := d.Info()
			if err != nil {
				return err
			}
			st := fi.Sys().(*syscallStat)
			if rel == "." {
				if isOpaque(p) {
					if err := emptyDir(dest); err != nil {
						return err
					}
				}
				return nil
			}
			if isWhiteout(fi) {
				return os.RemoveAll(dst)
			}
			if fi.IsDir() {
				if have, err := os.Lstat(dst); err == nil && !have.IsDir() {
					if err := os.Remove(dst); err != nil {
						return err
					}
				}
				if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
					return err
				}
				if isOpaque(p) {
					if err := emptyDir(dst); err != nil {
						return err
					}
				}
				if err := copyMeta(p, dst, fi, st); err != nil {
					return err
				}
				dirTimes[rel] = [2]unix.Timespec{unix.NsecToTimespec(st.Atim.Nano()), unix.NsecToTimespec(st.Mtim.Nano())}
				return nil
			}
			if err := os.RemoveAll(dst); err != nil {
				return err
			}
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := links[key]; ok && fi.Mode().IsRegular() {
				return os.Link(first, dst)
			}
			switch {
			case fi.Mode().IsRegular():
				if err := copyFile(p, dst); err != nil {
					return err
				}
				if st.Nlink > 1 {
					links[key] = dst
				}
			case fi.Mode()&fs.ModeSymlink != 0:
				target, err := os.Readlink(p)
				if err != nil {
					return err
				}
				if err := os.Symlink(target, dst); err != nil {
					return err
				}
			default:
				if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
					return fmt.Errorf("mknod %s: %w", dst, err)
				}
			}
			if err := copyMeta(p, dst, fi, st); err != nil {
				return err
			}
			ts := []unix.Timespec{unix.NsecToTimespec(st.Atim.Nano()), unix.NsecToTimespec(st.Mtim.Nano())}
			return unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts, unix.AT_SYMLINK_NOFOLLOW)
		})
		if err != nil {
			return fmt.Errorf("flattening layer %s: %w", src, err)
		}
	}
	// Directory times last, deepest first: writing into a directory
	// changes them.
	rels := make([]string, 0, len(dirTimes))
	for rel := range dirTimes {
		rels = append(rels, rel)
	}
	sort.Slice(rels, func(i, j int) bool { return strings.Count(rels[i], "/") > strings.Count(rels[j], "/") })
	for _, rel := range rels {
		t := dirTimes[rel]
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(dest, rel), t[:], unix.AT_SYMLINK_NOFOLLOW); err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return nil
}

// emptyDir removes what a directory holds.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// copyMeta gives dst src's owner, mode and allowed extended attributes.
func copyMeta(src, dst string, fi fs.FileInfo, st *syscallStat) error {
	if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil
	}
	for _, name := range []string{"security.capability"} {
		buf := make([]byte, 256)
		if n, err := unix.Lgetxattr(src, name, buf); err == nil {
			_ = unix.Lsetxattr(dst, name, buf[:n], 0)
		}
	}
	if sz, err := unix.Llistxattr(src, nil); err == nil && sz > 0 {
		names := make([]byte, sz)
		if sz, err = unix.Llistxattr(src, names); err == nil {
			for _, name := range strings.Split(strings.TrimRight(string(names[:sz]), "\x00"), "\x00") {
				if !strings.HasPrefix(name, "user.") {
					continue
				}
				if n, err := unix.Lgetxattr(src, name, nil); err == nil {
					v := make([]byte, n)
					if n, err = unix.Lgetxattr(src, name, v); err == nil {
						_ = unix.Lsetxattr(dst, name, v[:n], 0)
					}
				}
			}
		}
	}
	return unix.Chmod(dst, st.Mode&0o7777)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadFile reads a regular file of the image the layer trees make (lowers
// top first) as an overlay of them shows it, without following symlinks:
// for the image's /etc/passwd and /etc/group. ok is false when the file
// is not there (or is not a regular file).
func ReadFile(lowers []string, rel string, max int64) (data []byte, ok bool, err error) {
	parts := strings.Split(rel, "/")
	for _, lower := range lowers {
		stop := false
		for i := 1; i < len(parts); i++ {
			p := filepath.Join(lower, filepath.Join(parts[:i]...))
			fi, err := os.Lstat(p)
			if errors.Is(err, fs.ErrNotExist) {
				break
			}
			if err != nil {
				return nil, false, err
			}
			if !fi.IsDir() {
				return nil, false, nil // a whiteout or a file hides all below
			}
			if isOpaque(p) {
				stop = true
			}
		}
		p := filepath.Join(lower, rel)
		fi, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, false, err
		case !fi.Mode().IsRegular():
			return nil, false, nil
		default:
			f, err := os.Open(p)
			if err != nil {
				return nil, false, err
			}
			defer f.Close()
			data, err := io.ReadAll(io.LimitReader(f, max))
			return data, err == nil, err
		}
		if stop {
			return nil, false, nil
		}
	}
	return nil, false, nil
}

// UserDB reads the image's etc/passwd and etc/group from its layer trees,
// for Manifest.
func UserDB(lowers []string) (map[string][]byte, error) {
	db := map[string][]byte{}
	for _, name := range []string{"etc/passwd", "etc/group"} {
		data, ok, err := ReadFile(lowers, name, maxUserDBSize)
		if err != nil {
			return nil, err
		}
		if ok {
			db[name] = data
		}
	}
	return db, nil
}

// WriteLayeredACI writes the ACI that stands for a layered image in the
// store: its manifest and an empty rootfs/, whose content is the layer
// trees the store keeps for it. The output depends on the manifest and
// created alone.
func WriteLayeredACI(w io.Writer, m *schema.ImageManifest, created time.Time) error {
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("image manifest: %w: %w", err, errdefs.ErrInvalid)
	}
	epoch := time.Unix(0, 0)
	if !created.IsZero() {
		epoch = created
	}
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{Name: aci.ManifestName, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: aci.RootfsName + "/", Mode: 0o755, ModTime: epoch, Typeflag: tar.TypeDir, Format: tar.FormatPAX}); err != nil {
		return err
	}
	return tw.Close()
}
