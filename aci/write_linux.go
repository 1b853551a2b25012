package aci

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/appc/spec/schema"
	"github.com/klauspost/compress/gzip"
	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
)

// WriteOptions tune Write.
type WriteOptions struct {
	Compression Compression
	// ModTime, when set, replaces every entry's modification time, so that
	// the same files give the same bytes whenever they were made.
	ModTime *time.Time
	// SkipSockets leaves Unix domain sockets out (a tar cannot hold them):
	// for a root filesystem an app has run in, whose sockets mean nothing
	// once it has exited. Without it a socket is an error.
	SkipSockets bool
	// MaxSize, when positive, bounds the total size of rootfs's regular
	// files (each hard-linked file counted once): a larger tree is
	// refused as soon as its files come to more, before their bytes are
	// read.
	MaxSize int64
}

// Write writes an ACI made of manifest and the directory rootfs to w,
// stopping with ctx's error once ctx is done. The
// output is deterministic: the manifest first, then rootfs walked in
// lexical order; owners as numbers without user or group names; times to
// the second (all set to opts.ModTime if given, the manifest's to rootfs's
// own otherwise); no access or change times. Files that are hard links of
// one another are stored once and linked. Extended attributes in the user
// and trusted namespaces and file capabilities are kept.
func Write(ctx context.Context, w io.Writer, manifest *schema.ImageManifest, rootfs string, opts WriteOptions) error {
	data, err := json.Marshal(manifest)
	if err != nil {
		return fmt.Errorf("image manifest: %w: %w", err, errdefs.ErrInvalid)
	}
	info, err := os.Lstat(rootfs)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("rootfs %s: not a directory: %w", rootfs, errdefs.ErrInvalid)
	}

	out := w
	var gz *gzip.Writer
	switch opts.Compression {
	case CompressionNone:
	case CompressionGzip:
		gz = gzip.NewWriter(w)
		out = gz
	default:
		return fmt.Errorf("compression %v: %w", opts.Compression, errdefs.ErrInvalid)
	}
	tw := tar.NewWriter(out)

	mtime := info.ModTime()
	if opts.ModTime != nil {
		mtime = *opts.ModTime
	}
	if err := tw.WriteHeader(&tar.Header{
		Name:     ManifestName,
		Typeflag: tar.TypeReg,
		Mode:     0o644,
		Size:     int64(len(data)),
		ModTime:  mtime.Truncate(time.Second),
	}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}

	tw2 := &treeWriter{ctx: ctx, tw: tw, modTime: opts.ModTime, skipSockets: opts.SkipSockets, maxSize: opts.MaxSize, links: make(map[inode]string)}
	if err := filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(rootfs, p)
		if err != nil {
			return err
		}
		name := RootfsName
		if rel != "." {
			name = RootfsName + "/" + filepath.ToSlash(rel)
		}
		return tw2.add(p, name)
	}); err != nil {
		return quotePathError(err, rootfs)
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if gz != nil {
		return gz.Close()
	}
	return nil
}

type inode struct{ dev, ino uint64 }

// treeWriter adds files to a tar, remembering hard-linked inodes.
type treeWriter struct {
	ctx         context.Context
	tw          *tar.Writer
	maxSize     int64
	size        int64 // of the regular files written so far
	modTime     *time.Time
	skipSockets bool
	links       map[inode]string // inode -> the first name written for it
}

func (t *treeWriter) add(p, name string) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return &os.PathError{Op: "lstat", Path: p, Err: err}
	}
	mtime := time.Unix(st.Mtim.Unix())
	if t.modTime != nil {
		mtime = *t.modTime
	}
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: mtime.Truncate(time.Second),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		hdr.Name += "/"
	case unix.S_IFREG:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = st.Size
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		// A relative link leading out of the root is refused here as
		// it is on import: the image could not be fetched again, and a
		// less careful reader would follow it out of the root.
		if err := checkSymlink(name, target); err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFCHR, unix.S_IFBLK:
		hdr.Typeflag = tar.TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			hdr.Typeflag = tar.TypeBlock
		}
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case unix.S_IFSOCK:
		if t.skipSockets {
			return nil
		}
		fallthrough
	default:
		return fmt.Errorf("%q: file type %#o cannot be stored in an image: %w", p, st.Mode&unix.S_IFMT, errdefs.ErrInvalid)
	}
	if hdr.Typeflag != tar.TypeDir && st.Nlink > 1 {
		key := inode{dev: st.Dev, ino: st.Ino}
		if first, ok := t.links[key]; ok {
			hdr.Typeflag, hdr.Linkname, hdr.Size = tar.TypeLink, first, 0
			return t.tw.WriteHeader(hdr)
		}
		t.links[key] = name
	}
	if hdr.Typeflag == tar.TypeReg {
		t.size += hdr.Size
		if t.maxSize > 0 && t.size > t.maxSize {
			return fmt.Errorf("%q: the files come to more than %d bytes: %w", p, t.maxSize, ErrTooLarge)
		}
	}
	if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeDir {
		xattrs, err := readXattrs(p)
		if err != nil {
			return err
		}
		hdr.PAXRecords = xattrs
	}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return fmt.Errorf("%q: %w", name, err)
	}
	if hdr.Typeflag != tar.TypeReg {
		return nil
	}
	// Not following a link, not waiting on a FIFO, and only the file
	// that was looked at: a name changed since is an error, not read.
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var fst unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &fst); err != nil {
		return err
	}
	if fst.Mode&unix.S_IFMT != unix.S_IFREG || fst.Dev != st.Dev || fst.Ino != st.Ino {
		return fmt.Errorf("%q: changed while being written: %w", p, errdefs.ErrInvalid)
	}
	if _, err := io.CopyN(t.tw, ctxReader{t.ctx, f}, hdr.Size); err != nil {
		if cerr := t.ctx.Err(); cerr != nil {
			return cerr
		}
		return fmt.Errorf("%q: changed while being written: %w", p, err)
	}
	return nil
}

// quotePathError rewrites an error about a file of rootfs to name the file
// as the image does and quoted: the names come from whoever made the tree
// (an app, for an export), and a control character or escape sequence in
// one must not reach the user's terminal.
func quotePathError(err error, rootfs string) error {
	var pe *fs.PathError
	if !errors.As(err, &pe) {
		return err
	}
	name := pe.Path
	if rel, rerr := filepath.Rel(rootfs, pe.Path); rerr == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
		name = RootfsName + "/" + filepath.ToSlash(rel)
	}
	return fmt.Errorf("%s %q: %w", pe.Op, name, pe.Err)
}

// ErrTooLarge is returned by Write for a rootfs whose files come to more
// than WriteOptions.MaxSize.
var ErrTooLarge = fmt.Errorf("too large: %w", errdefs.ErrInvalid)

// ctxReader reads from r until ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(b []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(b)
}

// keptXattr reports whether an extended attribute belongs in an image:
// host-specific ones (SELinux labels, ACLs) do not.
func keptXattr(name string) bool {
	return strings.HasPrefix(name, "user.") || strings.HasPrefix(name, "trusted.") || name == "security.capability"
}

// readXattrs returns a file's kept extended attributes as PAX records.
func readXattrs(p string) (map[string]string, error) {
	size, err := unix.Llistxattr(p, nil)
	if err != nil || size == 0 {
		if err == unix.ENOTSUP || err == unix.EOPNOTSUPP {
			return nil, nil
		}
		return nil, err
	}
	buf := make([]byte, size)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		return nil, err
	}
	var recs map[string]string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" || !keptXattr(name) {
			continue
		}
		vsize, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			continue // removed meanwhile, or not readable by us
		}
		val := make([]byte, vsize)
		vn, err := unix.Lgetxattr(p, name, val)
		if err != nil {
			continue
		}
		if recs == nil {
			recs = make(map[string]string)
		}
		recs["SCHILY.xattr."+name] = string(val[:vn])
	}
	return recs, nil
}

// WriteFile writes an ACI (see Write) to path atomically: into an unnamed
// file in the same directory, synced, then linked (or renamed) into place,
// and the directory synced, so that a write cut short, even by a kill,
// leaves nothing under any name. Unless overwrite is set, an existing path is left alone
// and ErrAlreadyExists returned.
func WriteFile(ctx context.Context, path string, manifest *schema.ImageManifest, rootfs string, opts WriteOptions, overwrite bool) error {
	if inside, err := within(filepath.Dir(path), rootfs); err != nil {
		return err
	} else if inside {
		return fmt.Errorf("%s: the image cannot be written inside its own rootfs %s: %w", path, rootfs, errdefs.ErrInvalid)
	}
	return atomicfile.CreateUnnamed(path, 0o644, overwrite, func(w io.Writer) error {
		return Write(ctx, w, manifest, rootfs, opts)
	})
}

// within reports whether dir is root or below it, symlinks resolved.
func within(dir, root string) (bool, error) {
	d, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false, err
	}
	r, err := filepath.EvalSymlinks(root)
	if err != nil {
		return false, err
	}
	rel, err := filepath.Rel(r, d)
	if err != nil {
		return false, nil
	}
	return rel == "." || (rel != ".." && !strings.HasPrefix(rel, "../")), nil
}
