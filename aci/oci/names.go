package oci

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync/atomic"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

const (
	whiteoutPrefix = ".wh."
	// opaqueMarker in a directory hides everything lower layers put in it.
	opaqueMarker = ".wh..wh..opq"
	// maxUserDBSize bounds how much of /etc/passwd and /etc/group is kept
	// to resolve the image's user.
	maxUserDBSize = 1 << 20
)

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

// Budget is how many uncompressed bytes the layers extracted for one image
// may still take, against the store's maximum image size. The layers of an
// image are extracted side by side: it is safe for concurrent use.
type Budget struct {
	left  atomic.Int64
	limit int64
}

// NewBudget returns a budget of limit bytes.
func NewBudget(limit int64) *Budget {
	b := &Budget{limit: limit}
	b.left.Store(limit)
	return b
}

type budgetReader struct {
	ctx context.Context
	b   *Budget
	r   io.Reader
	n   *int64 // bytes read
}

func (r budgetReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := r.r.Read(p)
	*r.n += int64(n)
	if r.b.left.Add(-int64(n)) < 0 {
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

func tarError(err error) error {
	if errors.Is(err, errdefs.ErrInvalid) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if errors.Is(err, tar.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, tar.ErrFieldTooLong) {
		return fmt.Errorf("reading layer: %w: %w", err, errdefs.ErrInvalid)
	}
	return fmt.Errorf("reading layer: %w", err)
}
