package builtin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/store"
)

// Store is what installing a built-in stage1 image needs from the image
// store.
type Store interface {
	// FindByName finds the newest image with the name and labels.
	FindByName(name types.ACIdentifier, labels types.Labels) (store.Image, error)
	// Import stores an image.
	Import(r io.Reader, opts store.ImportOptions) (store.Image, error)
	// Lock takes a store-wide lock by name, waiting for it until ctx ends.
	Lock(ctx context.Context, name string) (unlock func() error, err error)
}

// Install returns the image ID of the flavour's stage1 image for the
// running binary, writing and importing the image the first time (see
// Documentation/design.md, "Built-in flavours"). Concurrent callers wait
// for one another instead of all writing the image.
func Install(ctx context.Context, st Store, f Flavour, version string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("finding the orbit binary: %w", err)
	}
	build, err := BuildID(exe)
	if err != nil {
		return "", err
	}
	labels := Labels(version, build)
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
	unlock, err := st.Lock(ctx, "stage1-"+f.String())
	if err != nil {
		return "", err
	}
	defer unlock()
	if id, ok, err := find(); err != nil || ok {
		return id, err
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(WriteACI(pw, f, version, build, f.Entries(exe, Supervisor(), Stage1Binary())))
	}()
	img, err := st.Import(pr, store.ImportOptions{Signer: store.SignerBuiltin})
	pr.CloseWithError(err)
	if err != nil {
		return "", fmt.Errorf("importing the built-in %s stage1 image: %w", f, err)
	}
	return img.ID, nil
}
