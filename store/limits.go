package store

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// DefaultMaxImageSize bounds an image's uncompressed size unless configured
// otherwise: 16 GiB holds the largest images in common use (toolchain and
// GPU runtime images stay below 10 GiB uncompressed) with room to spare,
// while a decompression bomb stops at a size the operator can know and
// plan for instead of at a full disk.
const DefaultMaxImageSize int64 = 16 << 30

// Free space kept on the store's filesystem: importing or rendering stops
// before the filesystem's available space falls below the smaller of these,
// so pods, logs and the index's own commits still find room.
const (
	minFreeBytes    int64 = 1 << 30
	minFreePercent        = 5
	freeCheckPeriod int64 = 64 << 20 // statfs again after writing this much
)

// Limits bound what the store writes for one image.
type Limits struct {
	// MaxImageSize bounds the uncompressed size of an image when it is
	// imported, and the total size of the images a tree is rendered from;
	// 0 means DefaultMaxImageSize.
	MaxImageSize int64
}

func (l Limits) maxImageSize() int64 {
	if l.MaxImageSize <= 0 {
		return DefaultMaxImageSize
	}
	return l.MaxImageSize
}

// WithLimits returns a view of the store that imports and renders within
// l.
func (s *Store) WithLimits(l Limits) *Store {
	c := *s
	c.limits = l
	return &c
}

// MaxImageSize is the largest uncompressed image this store view accepts.
func (s *Store) MaxImageSize() int64 { return s.limits.maxImageSize() }

// ParseSize reads a size as users write it: a whole number of bytes with an
// optional binary unit, "K", "M", "G", "T" or "KiB", "MiB", "GiB", "TiB"
// (and "B"). It must be positive.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	shift := map[string]uint{"": 0, "B": 0, "K": 10, "KiB": 10, "M": 20, "MiB": 20, "G": 30, "GiB": 30, "T": 40, "TiB": 40}
	sh, ok := shift[t[i:]]
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if i == 0 || !ok || err != nil || n <= 0 || n > math.MaxInt64>>sh {
		return 0, fmt.Errorf("size %q: want a positive whole number of bytes, optionally with a unit K, M, G, T (KiB, MiB, GiB, TiB): %w", s, errdefs.ErrInvalid)
	}
	return n << sh, nil
}

// FormatSize writes a byte count the way ParseSize reads it, in the
// largest binary unit that divides it.
func FormatSize(n int64) string {
	for _, u := range []struct {
		name  string
		shift uint
	}{{"TiB", 40}, {"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n > 0 && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", n>>u.shift, u.name)
		}
	}
	return fmt.Sprintf("%dB", n)
}

// errTooLarge is the refusal of an image over the size limit.
func errTooLarge(what string, limit int64) error {
	return fmt.Errorf("%s is larger than the limit of %s uncompressed (maxImageSize in store.json, or ORBIT_MAX_IMAGE_SIZE): %w", what, FormatSize(limit), errdefs.ErrInvalid)
}

// checkFree fails when writing need more bytes below dir would leave less
// free space than the store keeps in reserve.
func checkFree(dir string, need int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("checking free space of %s: %w", dir, err)
	}
	avail := int64(st.Bavail) * st.Bsize
	reserve := min(minFreeBytes, int64(st.Blocks)*st.Bsize*minFreePercent/100)
	if avail-need < reserve {
		return fmt.Errorf("not enough free space in %s: %s available, %s more needed and %s kept in reserve: %w",
			dir, FormatSize(max(avail, 0)), FormatSize(need), FormatSize(reserve), unix.ENOSPC)
	}
	return nil
}

// boundedWriter counts what is written through it and fails once it
// passes limit, or once the filesystem of dir runs short (checked every
// freeCheckPeriod bytes).
type boundedWriter struct {
	w         io.Writer
	limit     int64
	dir       string
	n         int64
	nextCheck int64
}

func (b *boundedWriter) Write(p []byte) (int, error) {
	if b.n+int64(len(p)) > b.limit {
		return 0, errTooLarge("image", b.limit)
	}
	if b.n >= b.nextCheck {
		if err := checkFree(b.dir, freeCheckPeriod); err != nil {
			return 0, err
		}
		b.nextCheck = b.n + freeCheckPeriod
	}
	n, err := b.w.Write(p)
	b.n += int64(n)
	return n, err
}
