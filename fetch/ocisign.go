package fetch

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// verifyDocker checks a registry image's signatures before any layer is
// admitted and returns the fingerprint of the key that signed it.
func (f *Fetcher) verifyDocker(ctx context.Context, ref name.Reference, desc *remote.Descriptor, opts []remote.Option) (string, error) {
	return "", fmt.Errorf("has no signature orbit can check (manifest %s): skip verification with --insecure-options=image: %w", desc.Digest, errdefs.ErrUntrusted)
}
