package aci

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/inroot"
)

// Extract writes the entries of an uncompressed ACI tar into dest:
// dest/manifest and dest/rootfs/.... It keeps modes, numeric owners (when
// run as root), modification times, extended attributes where the
// filesystem takes them, device nodes, fifos, hard links and symlinks.
//
// keep filters entries by their cleaned name ("rootfs/bin/sh"); nil keeps
// all. A hard link whose target was filtered out is dropped with it. Later
// entries replace earlier ones at the same path, as tar does.
//
// Extract validates every entry as Check does and refuses the first bad one
// with errdefs.ErrInvalid. Independently of that, every path below rootfs
// is resolved inside dest/rootfs, symlinks included, so no entry can write
// outside it whatever came before.
func Extract(tarStream io.Reader, dest string, keep func(name string) bool) error {
	route := func(name string, _ *tar.Header) (string, bool) {
		return name, keep == nil || keep(name)
	}
	return extract(tarStream, dest, extractOptions{route: route, check: true})
}

// extractOptions tune extract for Render and for tests.
type extractOptions struct {
	// route decides, for each entry, whether to write it and under which
	// cleaned name. Render uses it to move a hard link's data to the link
	// when the data's own name is hidden by an upper image.
	route func(name string, hdr *tar.Header) (dst string, ok bool)
	// check validates entries as Check does; off only in tests that prove
	// the path resolution safe on its own.
	check bool
	// noOpenat2 forces the component-by-component resolver.
	noOpenat2 bool
	// rewrite, when set, sees every header first and returns the one to
	// write (nil skips the entry); ExtractLayer uses it.
	rewrite func(hdr *tar.Header) (*tar.Header, error)
}

// dirTime is a directory whose times are set once all entries are written,
// since writing into it changes them.
type dirTime struct {
	rel   string // below rootfs; "" is rootfs itself
	times []unix.Timespec
}

type extractor struct {
	dest    int // O_PATH descriptor of dest
	res     *inroot.Root
	chown   bool
	written map[string]string // cleaned tar name -> cleaned name it was written as
	dirs    []dirTime

	cacheRel string // the last parent directory opened, kept open
	cacheFd  int

	buf []byte // copies every regular file's data, allocated once
}

// fdWriter writes to a descriptor directly: no *os.File, whose ReadFrom
// allocates a 32 KiB buffer for every file it copies from a reader that is
// not a file, nor its poller.
type fdWriter int

func (w fdWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		m, err := unix.Write(int(w), p[n:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		n += m
	}
	return n, nil
}

func extract(tarStream io.Reader, dest string, opts extractOptions) error {
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	destFd, err := unix.Open(dest, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dest, Err: err}
	}
	defer unix.Close(destFd)
	if err := unix.Mkdirat(destFd, RootfsName, 0o755); err != nil && err != unix.EEXIST {
		return &os.PathError{Op: "mkdir", Path: path.Join(dest, RootfsName), Err: err}
	}
	rootFd, err := unix.Openat(destFd, RootfsName, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: path.Join(dest, RootfsName), Err: err}
	}
	res := inroot.New(rootFd)
	if opts.noOpenat2 {
		res = inroot.WithoutOpenat2(rootFd)
	}
	defer res.Close()

	x := &extractor{
		dest:    destFd,
		res:     res,
		chown:   os.Geteuid() == 0,
		written: make(map[string]string),
		cacheFd: -1,
	}
	defer x.dropCache()

	var c *checker
	if opts.check {
		c = newChecker()
	}
	tr := tar.NewReader(tarStream)
	if err := walkTar(tr, func(hdr *tar.Header) error {
		if opts.rewrite != nil {
			h, err := opts.rewrite(hdr)
			if err != nil || h == nil {
				return err
			}
			hdr = h
		}
		var err error
		var name string
		if c != nil {
			// The manifest's data is consumed by the check; keep a copy.
			var data strings.Builder
			r := io.Reader(tr)
			if isManifestName(hdr.Name) && hdr.Size <= MaxManifestSize {
				r = io.TeeReader(tr, &data)
			}
			if name, err = c.entry(hdr, r); err != nil {
				return err
			}
			if name == ManifestName {
				if dst, ok := opts.route(name, hdr); ok {
					if err := x.entry(dst, hdr, strings.NewReader(data.String())); err != nil {
						return err
					}
					x.written[name] = dst
				}
				return nil
			}
		} else if name, err = cleanName(hdr.Name); err != nil {
			return err
		}
		dst, ok := opts.route(name, hdr)
		if !ok {
			return nil
		}
		if err := x.entry(dst, hdr, tr); err != nil {
			return err
		}
		x.written[name] = dst
		return nil
	}); err != nil {
		return err
	}
	if c != nil && c.manifest == nil {
		return fmt.Errorf("image has no manifest: %w", errdefs.ErrInvalid)
	}
	return x.finishDirs()
}

// rootfsRel returns a cleaned name's path below rootfs ("" for rootfs).
func rootfsRel(name string) string {
	return strings.TrimPrefix(strings.TrimPrefix(name, RootfsName), "/")
}

// relDir returns the directory, below rootfs, holding a cleaned name
// ("" for rootfs itself).
func relDir(name string) string {
	dir := path.Dir(rootfsRel(name))
	if dir == "." {
		return ""
	}
	return dir
}

func isManifestName(raw string) bool {
	return path.Clean(strings.TrimPrefix(raw, "./")) == ManifestName
}

// parent returns a descriptor of the directory that holds name (a cleaned
// tar name) and the name's last component. The descriptor belongs to the
// extractor's cache: callers do not close it.
func (x *extractor) parent(name string) (int, string, error) {
	if name == ManifestName || name == RootfsName {
		return x.dest, name, nil
	}
	dir, base := relDir(name), path.Base(name)
	if x.cacheFd >= 0 && x.cacheRel == dir {
		return x.cacheFd, base, nil
	}
	x.dropCache()
	fd, err := x.res.MkdirAll(dir)
	if err != nil {
		if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) {
			return -1, "", entryError(name, "parent directory: %v", err)
		}
		return -1, "", fmt.Errorf("tar entry %q: parent directory: %w", name, err)
	}
	x.cacheRel, x.cacheFd = dir, fd
	return fd, base, nil
}

func (x *extractor) dropCache() {
	if x.cacheFd >= 0 {
		unix.Close(x.cacheFd)
	}
	x.cacheFd, x.cacheRel = -1, ""
}

// entry writes one entry at the cleaned name dst.
func (x *extractor) entry(dst string, hdr *tar.Header, data io.Reader) error {
	if isSparse(hdr) {
		return entryError(dst, "sparse files are not supported")
	}
	typ, ok := entryType(hdr)
	if !ok {
		return entryError(dst, "unsupported entry type %q", hdr.Typeflag)
	}
	if (dst == ManifestName && typ != tar.TypeReg) || (dst == RootfsName && typ != tar.TypeDir) {
		return entryError(dst, "wrong entry type %q", hdr.Typeflag)
	}
	var linkTo string // for a hard link: the cleaned name its target was written as
	if typ == tar.TypeLink {
		target, err := cleanName(hdr.Linkname)
		if err != nil || !strings.HasPrefix(target, RootfsName+"/") {
			return entryError(dst, "hard link target %q is outside the image root", hdr.Linkname)
		}
		written, ok := x.written[target]
		if !ok || written == dst {
			// The target was filtered out, or this entry carries its data.
			return nil
		}
		linkTo = written
	}
	dirFd, base, err := x.parent(dst)
	if err != nil {
		return err
	}
	fail := func(op string, err error) error {
		return fmt.Errorf("tar entry %q: %s: %w", dst, op, err)
	}
	if err := x.clear(dirFd, base, typ == tar.TypeDir); err != nil {
		return fail("replacing existing entry", err)
	}
	mode := uint32(hdr.Mode) & 0o7777
	switch typ {
	case tar.TypeReg:
		return x.regular(dirFd, base, hdr, mode, data, fail)
	case tar.TypeDir:
		return x.directory(dirFd, base, dst, hdr, mode, fail)
	case tar.TypeSymlink:
		if err := unix.Symlinkat(hdr.Linkname, dirFd, base); err != nil {
			return fail("symlink", err)
		}
	case tar.TypeLink:
		return x.hardlink(dirFd, base, linkTo, fail)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		kind := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[typ]
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknodat(dirFd, base, kind|mode, int(dev)); err != nil {
			return fail("mknod", err)
		}
		if err := x.owner(dirFd, base, hdr); err != nil {
			return fail("chown", err)
		}
		// Just created by us, so not a symlink: fchmodat may follow.
		if err := unix.Fchmodat(dirFd, base, mode, 0); err != nil {
			return fail("chmod", err)
		}
	}
	return x.times(dirFd, base, hdr, fail)
}

// clear removes what is at base unless both it and the new entry are
// directories. A non-empty directory is not replaced by a non-directory.
// The cached parent stays valid: only a child of it goes.
func (x *extractor) clear(dirFd int, base string, newIsDir bool) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirFd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if err == unix.ENOENT {
			return nil
		}
		return err
	}
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	switch {
	case isDir && newIsDir:
		return nil
	case isDir:
		if err := unix.Unlinkat(dirFd, base, unix.AT_REMOVEDIR); err != nil {
			if err == unix.ENOTEMPTY || err == unix.EEXIST {
				return fmt.Errorf("a non-empty directory is in the way: %w", errdefs.ErrInvalid)
			}
			return err
		}
	default:
		if err := unix.Unlinkat(dirFd, base, 0); err != nil {
			return err
		}
	}
	return nil
}

func (x *extractor) regular(dirFd int, base string, hdr *tar.Header, mode uint32, data io.Reader, fail func(string, error) error) error {
	fd, err := unix.Openat(dirFd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fail("create", err)
	}
	defer unix.Close(fd)
	if x.buf == nil {
		x.buf = make([]byte, 1<<20)
	}
	if _, err := io.CopyBuffer(fdWriter(fd), data, x.buf); err != nil {
		if errors.Is(err, errdefs.ErrInvalid) || errors.Is(err, io.ErrUnexpectedEOF) {
			return tarError(err)
		}
		return fail("write", err)
	}
	if x.chown {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return fail("chown", err)
		}
	}
	setXattrs(fd, hdr)
	if err := unix.Fchmod(fd, mode); err != nil {
		return fail("chmod", err)
	}
	return x.times(dirFd, base, hdr, fail)
}

func (x *extractor) directory(dirFd int, base, dst string, hdr *tar.Header, mode uint32, fail func(string, error) error) error {
	if err := unix.Mkdirat(dirFd, base, 0o700); err != nil && err != unix.EEXIST {
		return fail("mkdir", err)
	}
	fd, err := unix.Openat(dirFd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail("open", err)
	}
	defer unix.Close(fd)
	if x.chown {
		if err := unix.Fchown(fd, hdr.Uid, hdr.Gid); err != nil {
			return fail("chown", err)
		}
	}
	setXattrs(fd, hdr)
	if err := unix.Fchmod(fd, mode); err != nil {
		return fail("chmod", err)
	}
	x.dirs = append(x.dirs, dirTime{rel: rootfsRel(dst), times: timespecs(hdr)})
	return nil
}

// hardlink links base in dirFd to the entry written as the cleaned name
// written, resolving its directory inside the root.
func (x *extractor) hardlink(dirFd int, base, written string, fail func(string, error) error) error {
	tdir, err := x.res.Open(relDir(written), unix.O_PATH|unix.O_DIRECTORY)
	if err != nil {
		return fail("hard link target", err)
	}
	defer unix.Close(tdir)
	if err := unix.Linkat(tdir, path.Base(written), dirFd, base, 0); err != nil {
		return fail("link", err)
	}
	return nil
}

// owner sets the numeric owner of a non-directory without following it.
func (x *extractor) owner(dirFd int, base string, hdr *tar.Header) error {
	if !x.chown {
		return nil
	}
	return unix.Fchownat(dirFd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW)
}

// times sets a non-directory's owner (symlinks only: others set it before
// their mode) and its access and modification times, without following it.
func (x *extractor) times(dirFd int, base string, hdr *tar.Header, fail func(string, error) error) error {
	if hdr.Typeflag == tar.TypeSymlink {
		if err := x.owner(dirFd, base, hdr); err != nil {
			return fail("chown", err)
		}
	}
	if err := unix.UtimesNanoAt(dirFd, base, timespecs(hdr), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fail("set times", err)
	}
	return nil
}

func timespecs(hdr *tar.Header) []unix.Timespec {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return []unix.Timespec{timespec(atime), timespec(hdr.ModTime)}
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		t = time.Unix(0, 0)
	}
	return unix.NsecToTimespec(t.UnixNano())
}

// finishDirs sets the times of the directories written, deepest last
// written first, now that nothing more is written into them.
func (x *extractor) finishDirs() error {
	x.dropCache()
	for i := len(x.dirs) - 1; i >= 0; i-- {
		d := x.dirs[i]
		dirFd, base := x.dest, RootfsName
		if d.rel != "" {
			fd, err := x.res.Open(relDir(RootfsName+"/"+d.rel), unix.O_PATH|unix.O_DIRECTORY)
			if err != nil {
				continue // replaced since by something else; nothing to date
			}
			dirFd, base = fd, path.Base(d.rel)
		}
		err := unix.UtimesNanoAt(dirFd, base, d.times, unix.AT_SYMLINK_NOFOLLOW)
		if dirFd != x.dest {
			unix.Close(dirFd)
		}
		if err != nil && err != unix.ENOENT {
			return fmt.Errorf("setting times of %q: %w", path.Join(RootfsName, d.rel), err)
		}
	}
	return nil
}

// setXattrs applies the extended attributes recorded in a PAX header, as
// far as the filesystem and our privileges allow; an attribute that cannot
// be set is dropped.
func setXattrs(fd int, hdr *tar.Header) {
	const prefix = "SCHILY.xattr."
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, prefix); ok && allowedXattr(name) {
			_ = unix.Fsetxattr(fd, name, []byte(v), 0)
		}
	}
}

// allowedXattr says which extended attributes an image may set: user ones
// and file capabilities. trusted.* (overlayfs keeps its own metadata there,
// and rendered trees become overlay layers) and the other security.*
// attributes (labels of security modules) are the host's business.
func allowedXattr(name string) bool {
	return strings.HasPrefix(name, "user.") || name == "security.capability"
}
