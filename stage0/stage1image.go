package stage0

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/builtin"
	"github.com/orbit-containers/orbit/store"
)

// BuiltinStage1 returns the image ID of a built-in flavour's stage1 image
// for the running binary, writing and importing the image the first time
// (see Documentation/design.md, "Built-in flavours"). Concurrent callers
// wait for one another instead of all writing the image.
func BuiltinStage1(st *store.Store, storeDir string, f builtin.Flavour, version string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the orbit binary: %w", err)
	}
	build, err := builtin.BuildID(exe)
	if err != nil {
		return "", err
	}
	labels := builtin.Labels(version, build)
	// Only an image orbit wrote itself counts: one imported under the same
	// name and labels from elsewhere (--insecure-options=image) does not.
	find := func() (string, bool, error) {
		img, err := st.FindByName(f.ImageName(), labels)
		if errors.Is(err, errdefs.ErrNotFound) {
			return "", false, nil
		}
		if err != nil {
			return "", false, err
		}
		return img.ID, img.Signer == store.SignerBuiltin, nil
	}
	if id, ok, err := find(); err != nil || ok {
		return id, err
	}
	lockDir := filepath.Join(storeDir, "locks")
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		return "", err
	}
	lf, err := os.OpenFile(filepath.Join(lockDir, "stage1-"+f.String()+".lock"), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return "", err
	}
	defer lf.Close()
	if err := unix.Flock(int(lf.Fd()), unix.LOCK_EX); err != nil {
		return "", err
	}
	if id, ok, err := find(); err != nil || ok {
		return id, err
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(builtin.WriteACI(pw, f, version, build, f.Entries(exe, builtin.Supervisor())))
	}()
	img, err := st.Import(pr, store.ImportOptions{Signer: store.SignerBuiltin})
	pr.CloseWithError(err)
	if err != nil {
		return "", fmt.Errorf("importing the built-in %s stage1 image: %w", f, err)
	}
	return img.ID, nil
}
