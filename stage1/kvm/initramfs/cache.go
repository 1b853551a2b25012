package initramfs

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/kvm/kernel"
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
	p := filepath.Join(dir, "initramfs-"+key+".cpio")
	if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
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
