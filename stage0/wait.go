package stage0

import (
	"context"
	"errors"
	"io/fs"
	"time"

	"github.com/orbit-containers/orbit/internal/flock"
	"github.com/orbit-containers/orbit/internal/poll"
)

// The waits below end when their context is done, with its error, and
// leave nothing running: they poll (see poll.WhileBusy) where a blocking
// flock(2) could not be interrupted.

// waitPoll is how often Wait looks again at a pod that runs with nobody
// holding its lock.
const waitPoll = 100 * time.Millisecond

// readyPoll is how often WaitReady looks at the pod again.
const readyPoll = 50 * time.Millisecond

// Wait blocks until the pod is no longer running (its stage1 has exited
// and no process of it lives), or ctx is done. p follows the pod's state.
func (p *Pod) Wait(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		l, err := flock.Open(p.Path())
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				// moved on: reload and try again.
				np, lerr := load(p.podsDir, p.UUID)
				if lerr != nil {
					return lerr
				}
				*p = *np
				if p.State != Running && p.State != Preparing && p.State != Prepared && p.State != Embryo {
					return nil
				}
				continue
			}
			return err
		}
		// Whoever runs or prepares the pod holds it exclusively.
		err = l.Lock(ctx, flock.Shared)
		l.Close()
		if err != nil {
			return err
		}
		np, err := load(p.podsDir, p.UUID)
		if err != nil {
			return err
		}
		*p = *np
		if p.State != Running && p.State != Preparing {
			return nil
		}
		// Running with nobody holding the lock: processes of the pod
		// outlived its stage1; they are polled for.
		if err := poll.Sleep(ctx, waitPoll); err != nil {
			return err
		}
	}
}

// WaitReady blocks until the pod is ready, or ctx is done: running with
// the PID of its PID 1 reported, or past running already (it exited, or
// was collected). p follows the pod's state.
func (p *Pod) WaitReady(ctx context.Context) error {
	for {
		st, err := p.ReadStatus()
		if err != nil {
			return err
		}
		if (st.State == Running && st.Pid > 0) || (st.State.AfterRun() && st.State != Running) {
			return nil
		}
		if err := poll.Sleep(ctx, readyPoll); err != nil {
			return err
		}
		np, err := load(p.podsDir, p.UUID)
		if err != nil {
			return err
		}
		*p = *np
	}
}
