package stage0

import (
	"context"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/aci/oci"
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

// overlayFits says why an overlay of lowers cannot be mounted, or "" if
// it can: overlayfs stacks at most maxOverlayLowers directories, and the
// mount's option string must fit in a page.
func overlayFits(lowers []string, upper, work string) string {
	if len(lowers) > maxOverlayLowers {
		return fmt.Sprintf("%d layers are more than overlayfs stacks (%d)", len(lowers), maxOverlayLowers)
	}
	if n, page := len(overlayOptions(lowers, upper, work)), unix.Getpagesize(); n >= page {
		return fmt.Sprintf("the overlay's %d layer paths take %d bytes of options, more than a page (%d)", len(lowers), n, page)
	}
	return ""
}

// copyLowers makes dst the union of lowers (top first) as plain files: a
// copy of a single tree, or the layers of an OCI image flattened.
func copyLowers(ctx context.Context, lowers []string, dst string) error {
	if len(lowers) == 1 {
		return copyTree(lowers[0], dst)
	}
	return oci.Flatten(ctx, lowers, dst)
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
