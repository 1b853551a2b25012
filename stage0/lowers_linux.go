package stage0

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/aci/oci"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// maxOverlayLowers is how many lower directories overlayfs stacks at most
// (the kernel's OVL_MAX_STACK).
const maxOverlayLowers = 500

// overlayOptions is the option string of an overlay mount. Lower
// directories are given top first.
func overlayOptions(lowers []string, upper, work string) string {
	esc := make([]string, len(lowers))
	for i, l := range lowers {
		esc[i] = escapeOverlayPath(l)
	}
	return fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", strings.Join(esc, ":"), escapeOverlayPath(upper), escapeOverlayPath(work))
}

// fdPathWidth is the longest "/proc/self/fd/N" a lower directory is
// named by when the paths themselves do not fit (see mountOptions).
const fdPathWidth = len("/proc/self/fd/99999")

// overlayFits says why an overlay of lowers cannot be mounted, or "" if
// it can: overlayfs stacks at most maxOverlayLowers directories, and the
// mount's option string must fit in a page, with the lower directories
// named by descriptor if need be.
func overlayFits(lowers []string, upper, work string) string {
	if len(lowers) > maxOverlayLowers {
		return fmt.Sprintf("%d layers are more than overlayfs stacks (%d)", len(lowers), maxOverlayLowers)
	}
	short := make([]string, len(lowers))
	for i := range short {
		short[i] = strings.Repeat("x", fdPathWidth)
	}
	if n, page := len(overlayOptions(short, upper, work)), unix.Getpagesize(); n >= page {
		return fmt.Sprintf("the overlay of %d layers takes %d bytes of options, more than a page (%d)", len(lowers), n, page)
	}
	return ""
}

// mountOptions returns the option string to mount an overlay of lowers
// with: their paths, or, when those do not fit in a page (an image of
// many layers), /proc/self/fd/N of a descriptor opened on each, which the
// kernel resolves while mounting; done closes the descriptors once the
// mount is made.
func mountOptions(lowers []string, upper, work string) (opts string, done func(), err error) {
	opts = overlayOptions(lowers, upper, work)
	if len(opts) < unix.Getpagesize() {
		return opts, func() {}, nil
	}
	var fds []int
	done = func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	byFd := make([]string, len(lowers))
	for i, l := range lowers {
		fd, err := unix.Open(l, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			done()
			return "", nil, &os.PathError{Op: "open", Path: l, Err: err}
		}
		fds = append(fds, fd)
		byFd[i] = fmt.Sprintf("/proc/self/fd/%d", fd)
	}
	return overlayOptions(byFd, upper, work), done, nil
}

// copyLowers makes dst the union of a tree's lower directories as plain
// files: a copy of a tree of ACIs, or an OCI image's layers flattened.
func copyLowers(ctx context.Context, t TreeRef, dst string) error {
	if len(t.Lowers) == 1 && !t.Layered {
		return copyTree(t.Lowers[0], dst)
	}
	return oci.Flatten(ctx, t.Lowers, dst)
}

// withLowers sets m's lower directories: Lower alone for one, as pods
// made before OCI layers record it, else Lowers.
func withLowers(m overlayMount, lowers []string) overlayMount {
	if len(lowers) == 1 {
		m.Lower, m.Lowers = lowers[0], nil
	} else {
		m.Lower, m.Lowers = "", lowers
	}
	return m
}

// withIDMappedLowers names, for a pod run in a user namespace, where each of
// m's lower layers is mounted ID-mapped into the pod's range: the tree's own
// place for a single lower, one per layer tree for a layered image's.
func withIDMappedLowers(m overlayMount, treeID string) overlayMount {
	if len(m.Lowers) == 0 {
		m.IDMappedLower = contract.OverlayIDMappedLower("", treeID)
		return m
	}
	m.IDMappedLowers = make([]string, len(m.Lowers))
	for i, lower := range m.Lowers {
		m.IDMappedLowers[i] = contract.OverlayIDMappedLower("", "layer-"+filepath.Base(filepath.Dir(lower)))
	}
	return m
}
