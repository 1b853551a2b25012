package initramfs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/kvm/kernel"
)

// Cached archives are named cachePrefix + key + cacheSuffix.
const (
	cachePrefix = "initramfs-"
	cacheSuffix = ".cpio"
)

// formatVersion changes when Build's output changes for the same input, so
// older cached archives are not reused.
const formatVersion = "orbit-initramfs-1"

// Cached returns the path of an initramfs for init and k in dir, building it
// when it is not there yet. Its name is a hash of what goes in it (the
// init's content, the kernel's release and its modules' names and content),
// so a changed supervisor or kernel gets a new one and an unchanged one is
// built once. It appears atomically (a temp file renamed into place):
// concurrent orbit commands either find it whole or build the same bytes.
func Cached(dir string, init []byte, k *kernel.Kernel) (string, error) {
	key, err := cacheKey(init, k)
	if err != nil {
		return "", err
	}
	p := filepath.Join(dir, cachePrefix+key+cacheSuffix)
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
		// Its time is its last use, which Collect goes by.
		now := time.Now()
		_ = os.Chtimes(p, now, now)
		return p, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("initramfs cache: %w", err)
	}
	err = atomicfile.Create(p, 0o644, false, func(w io.Writer) error {
		return Build(w, init, k)
	})
	if err != nil && !errors.Is(err, errdefs.ErrAlreadyExists) {
		return "", err
	}
	return p, nil
}

func cacheKey(init []byte, k *kernel.Kernel) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\ninit %x\n", formatVersion, sha256.Sum256(init))
	if k != nil {
		fmt.Fprintf(h, "kernel %s\n", k.Version)
		for _, m := range k.Modules {
			mh := sha256.New()
			f, err := os.Open(m)
			if err != nil {
				return "", fmt.Errorf("initramfs cache: module: %w", err)
			}
			_, err = io.Copy(mh, f)
			f.Close()
			if err != nil {
				return "", fmt.Errorf("initramfs cache: module %s: %w", m, err)
			}
			fmt.Fprintf(h, "module %s %x\n", kernel.ModuleName(m), mh.Sum(nil))
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// Collect removes from the cache directory dir the archives not used since
// cutoff (Cached sets an archive's time each time it returns it) that no
// pod holds: a pod's run links the archive it boots into its own
// directory (see Link), so an archive with more than one link is in use
// by a pod that has not been collected yet and is kept. It also removes
// files whose names start with one of extra (other per-content caches kept
// beside the archives, such as probe results) not used since cutoff, and
// leftovers of interrupted writes. A missing dir is an empty cache. It
// returns the names removed.
func Collect(dir string, cutoff time.Time, extra ...string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("initramfs cache: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		name := e.Name()
		archive := strings.HasPrefix(name, cachePrefix) && strings.HasSuffix(name, cacheSuffix)
		leftover := strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-")
		other := false
		for _, x := range extra {
			other = other || strings.HasPrefix(name, x)
		}
		if !archive && !leftover && !other {
			continue
		}
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() || !fi.ModTime().Before(cutoff) {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); archive && ok && st.Nlink > 1 {
			continue // a pod's directory links it
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("initramfs cache: %w", err))
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

// Link gives a pod its own link to a cached archive, at dst (in the pod's
// directory, on the cache's file system), so that Collect keeps the
// archive while the pod is there and the pod keeps booting the same bytes
// whatever Collect does. It reports errdefs.ErrNotFound when src has gone
// (Collect removed it after Cached returned it): build it again.
func Link(src, dst string) error {
	if err := os.Remove(dst); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("initramfs: %w", err)
	}
	err := os.Link(src, dst)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("initramfs %s: %w", src, errdefs.ErrNotFound)
	case errors.Is(err, syscall.EXDEV):
		// Another file system: a copy of its own.
		in, err := os.Open(src)
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("initramfs %s: %w", src, errdefs.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("initramfs: %w", err)
		}
		defer in.Close()
		return atomicfile.Create(dst, 0o644, false, func(w io.Writer) error {
			_, err := io.Copy(w, in)
			return err
		})
	default:
		return fmt.Errorf("initramfs: %w", err)
	}
}
