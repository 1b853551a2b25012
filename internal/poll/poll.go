// Package poll waits, until a context is done, for what cannot be waited
// on directly: a flock(2) that another process holds, or a state another
// process writes. A blocking flock(2) cannot be interrupted, so a wait that
// must end when its context does tries a non-blocking one again and again
// instead; when the wait ends, nothing is left running behind it.
package poll

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// How often WhileBusy tries again: after MinDelay at first, doubling up to
// MaxDelay, each delay stretched by up to half again at random so that
// waiting processes do not try in step.
const (
	MinDelay = 5 * time.Millisecond
	MaxDelay = 100 * time.Millisecond
)

// WhileBusy calls try until it returns anything but an errdefs.ErrBusy
// error, and returns that. It returns ctx's error instead, at once, when
// ctx is done before or while it waits.
func WhileBusy(ctx context.Context, try func() error) error {
	delay := MinDelay
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := try()
		if !errors.Is(err, errdefs.ErrBusy) {
			return err
		}
		if err := Sleep(ctx, delay+rand.N(delay/2+1)); err != nil {
			return err
		}
		delay = min(2*delay, MaxDelay)
	}
}

// Sleep waits for d, or returns ctx's error as soon as ctx is done.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
