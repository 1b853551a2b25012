package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/orbit-containers/orbit/internal/poll"
)

// lockWait takes path's lock as lockFile does when it waits, but gives up
// with ctx's error as soon as ctx is done (see poll.WhileBusy).
func lockWait(ctx context.Context, path string, exclusive bool) (*fileLock, error) {
	var l *fileLock
	err := poll.WhileBusy(ctx, func() (err error) {
		l, err = lockFile(path, exclusive, true)
		return err
	})
	if err != nil && errors.Is(err, ctx.Err()) {
		return nil, fmt.Errorf("waiting for the lock on %s: %w", path, err)
	}
	return l, err
}
