package pod

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/appc/spec/schema"
	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/inroot"
)

// Annotations that mark an image converted from a Docker or OCI image:
// docker2aci's (and so rkt's) repository annotation, and the image ID,
// which orbit's own conversion sets for every OCI image, also one read
// from a local layout that has no repository.
const (
	annotationDockerRepository = "appc.io/docker/repository"
	annotationDockerImageID    = "appc.io/docker/imageid"
)

// DockerVolumes reports whether an image follows Docker's volume
// semantics: a new empty volume mounted at one of its paths starts with
// the image's files at that path, as rkt did for converted images.
func DockerVolumes(im *schema.ImageManifest) bool {
	if im == nil {
		return false
	}
	for _, name := range []string{annotationDockerRepository, annotationDockerImageID} {
		if v, ok := im.Annotations.Get(name); ok && v != "" {
			return true
		}
	}
	return false
}

// fillFromImage copies what the app's root filesystem holds at target into
// the new volume directory dir and, with owner set, gives dir the mode and
// owner of the directory at target, as Docker does for a new volume. Paths are resolved
// inside the app's root (a symbolic link on the way to target is followed
// there, never on the host); below target nothing is followed: links are
// copied as links, and what is neither a directory, a regular file nor a
// link is left out. Nothing at target, or not a directory, copies nothing.
func fillFromImage(appRoot, target, dir string, owner bool) error {
	root, err := inroot.OpenRoot(appRoot)
	if err != nil {
		return err
	}
	defer root.Close()
	src, err := root.Open(target, unix.O_RDONLY|unix.O_DIRECTORY)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(src)
	dst, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(dst)
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return err
	}
	c := &volumeCopier{root: dst, links: make(map[fileID][]string)}
	if err := c.copyDirContents(src, dst, nil); err != nil {
		return fmt.Errorf("copying the image's %s: %w", target, err)
	}
	if !owner {
		return nil
	}
	if err := unix.Fchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return unix.Fchmod(dst, st.Mode&0o7777)
}

// maxCopyDepth bounds the recursion of copyDirContents (and so the
// descriptors it holds open at once).
const maxCopyDepth = 256

// fileID names an inode of the image.
type fileID struct{ dev, ino uint64 }

// volumeCopier copies a tree of the image into a new volume. Files that
// are hard links of one another in the image are hard links of one another
// in the volume, so that the copy takes no more room than the image: an
// image holding one large file under many names cannot fill the disk.
type volumeCopier struct {
	root  int                 // the volume's directory
	links map[fileID][]string // a multiply linked file's first copy, by path in the volume
}

// copyDirContents copies the entries of the directory open as src into the
// directory open as dst (at path rel in the volume), every name relative
// to its directory's descriptor and nothing followed.
func (c *volumeCopier) copyDirContents(src, dst int, rel []string) error {
	if len(rel) > maxCopyDepth {
		return fmt.Errorf("directories nested deeper than %d", maxCopyDepth)
	}
	dup, err := unix.Dup(src)
	if err != nil {
		return err
	}
	d := os.NewFile(uintptr(dup), "dir")
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, name := range names {
		if err := c.copyEntry(src, dst, rel, name); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// linkCopy links name in dst to the copy made of a file seen before under
// another name, the path to it walked from the volume's root with nothing
// followed; ok is false for a file not seen before.
func (c *volumeCopier) linkCopy(st *unix.Stat_t, dst int, name string, path []string) (ok bool, err error) {
	first, seen := c.links[fileID{st.Dev, st.Ino}]
	if !seen {
		c.links[fileID{st.Dev, st.Ino}] = path
		return false, nil
	}
	dir, err := unix.Dup(c.root)
	if err != nil {
		return false, err
	}
	for _, comp := range first[:len(first)-1] {
		next, err := unix.Openat(dir, comp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(dir)
		if err != nil {
			return false, err
		}
		dir = next
	}
	defer unix.Close(dir)
	return true, unix.Linkat(dir, first[len(first)-1], dst, name, 0)
}

func (c *volumeCopier) copyEntry(src, dst int, rel []string, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(src, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	path := append(append([]string(nil), rel...), name)
	perm := st.Mode & 0o7777
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if err := unix.Mkdirat(dst, name, 0o700); err != nil {
			return err
		}
		s, err := unix.Openat(src, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(s)
		t, err := unix.Openat(dst, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(t)
		if err := c.copyDirContents(s, t, path); err != nil {
			return err
		}
		if err := unix.Fchown(t, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
		if err := unix.Fchmod(t, perm); err != nil {
			return err
		}
	case unix.S_IFREG:
		if st.Nlink > 1 {
			if linked, err := c.linkCopy(&st, dst, name, path); linked || err != nil {
				return err
			}
		}
		s, err := unix.Openat(src, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		in := os.NewFile(uintptr(s), name)
		defer in.Close()
		t, err := unix.Openat(dst, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		out := os.NewFile(uintptr(t), name)
		defer out.Close()
		if _, err := io.Copy(out, in); err != nil {
			return err
		}
		// Owner first: chown clears the set-user-ID and set-group-ID bits.
		if err := unix.Fchown(t, int(st.Uid), int(st.Gid)); err != nil {
			return err
		}
		if err := unix.Fchmod(t, perm); err != nil {
			return err
		}
	case unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(src, name, buf)
		if err != nil {
			return err
		}
		if err := unix.Symlinkat(string(buf[:n]), dst, name); err != nil {
			return err
		}
		if err := unix.Fchownat(dst, name, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		return unix.UtimesNanoAt(dst, name, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW)
	default:
		return nil // devices, FIFOs and sockets are not copied
	}
	return unix.UtimesNanoAt(dst, name, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW)
}
