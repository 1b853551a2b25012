package store

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/flock"
)

// Lock takes the store-wide lock called name (a file in the store's locks
// directory) exclusively, waiting for it, and returns the function that
// releases it; the wait ends with ctx. It serialises work between orbit processes that is not
// itself about one image or tree, such as writing a built-in stage1 image
// (name "stage1-<flavour>"). name is a plain file name that no tree ID
// can be, so tree locks and their gc never touch it.
func (s *Store) Lock(ctx context.Context, name string) (unlock func() error, err error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." || strings.HasPrefix(name, treePrefix) {
		return nil, fmt.Errorf("store lock name %q: %w", name, errdefs.ErrInvalid)
	}
	l, err := flock.Create(filepath.Join(s.locksDir(), name+".lock"), 0o644)
	if err != nil {
		return nil, fmt.Errorf("store lock %s: %w", name, err)
	}
	if err := l.Lock(ctx, flock.Exclusive); err != nil {
		l.Close()
		return nil, fmt.Errorf("store lock %s: %w", name, err)
	}
	return l.Close, nil
}
