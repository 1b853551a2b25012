package stage0

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/flock"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// GCConfig says how eagerly pods are collected.
type GCConfig struct {
	// GracePeriod is how long an exited pod stays marked before removal.
	GracePeriod time.Duration
	// ExpirePrepared is how long a prepared pod may wait to be run.
	ExpirePrepared time.Duration
	// MarkOnly marks exited and failed pods as garbage and removes nothing
	// (rkt's gc --mark-only, for a unit's ExecStopPost).
	MarkOnly bool
	Debug    bool
	Log      *slog.Logger
	// Out receives a line per pod removed; Marks a line per pod marked.
	Out   io.Writer
	Marks io.Writer
	// Exited, when set, is called for each exited pod gc marks, to
	// release what outlives a pod outside orbit's data (its metadata
	// service registration).
	Exited func(uuid string)
}

// embryoGrace is how long an embryo may exist before gc takes it for the
// leftover of a crash between mkdir and the first rename.
const embryoGrace = 10 * time.Minute

// GC marks exited pods, moves failed and expired prepares to garbage, and
// removes marked pods whose grace period is over (see
// Documentation/design.md, "Pods"). Pods in use by another command are
// skipped and revisited by a later gc. Once ctx is done it stops, with
// ctx's error, before the next pod; a later gc does the rest.
func GC(ctx context.Context, podsDir string, cfg GCConfig) error {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Marks == nil {
		cfg.Marks = io.Discard
	}
	if err := ensurePodsDirs(podsDir); err != nil {
		return err
	}
	// Marking looks only at the pods that may be marked; sweeping only at
	// the marked ones. Neither reads what a pod holds beyond its state and
	// age.
	pods, err := list(podsDir, []stateDir{dirEmbryo, dirPrepare, dirPrepared, dirRun}, false)
	if err != nil {
		return err
	}
	var errs []error
	now := time.Now()
	for _, p := range pods {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		switch p.State {
		case Exited:
			if err := p.markWith(dirExitedGarbage); err != nil {
				if !errors.Is(err, errdefs.ErrBusy) {
					errs = append(errs, err)
				}
				continue
			}
			fmt.Fprintf(cfg.Marks, "Moving pod %q to garbage\n", p.UUID)
			if cfg.Exited != nil {
				cfg.Exited(p.UUID)
			}
		case AbortedPrepare:
			if err := p.markWith(dirGarbage); err != nil && !errors.Is(err, errdefs.ErrBusy) {
				errs = append(errs, err)
			}
			continue
		case Prepared:
			if now.Sub(p.CreatedAt()) >= cfg.ExpirePrepared {
				if err := p.markWith(dirGarbage); err != nil {
					// A pod in use is revisited by a later gc.
					if errors.Is(err, errdefs.ErrBusy) {
						cfg.Log.Debug("expired prepared pod in use; left for a later gc", "pod", p.UUID)
					} else {
						errs = append(errs, fmt.Errorf("moving expired prepared pod %s to garbage: %w", p.UUID, err))
					}
					continue
				}
				fmt.Fprintf(cfg.Marks, "Moving expired prepared pod %q to garbage\n", p.UUID)
			}
			continue
		case Embryo:
			if now.Sub(p.CreatedAt()) >= embryoGrace {
				if err := os.Remove(p.Path()); err != nil && !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, err)
				}
			}
			continue
		}
	}
	if cfg.MarkOnly {
		return errors.Join(errs...)
	}
	// Sweep: what is marked now, including what was just marked.
	pods, err = list(podsDir, []stateDir{dirExitedGarbage, dirGarbage}, false)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, p := range pods {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		switch p.State {
		case ExitedGarbage:
			var st unix.Stat_t
			if err := unix.Stat(p.Path(), &st); err != nil {
				continue
			}
			marked := time.Unix(st.Ctim.Sec, st.Ctim.Nsec)
			if time.Since(marked) < cfg.GracePeriod {
				cfg.Log.Debug("pod still in its grace period", "pod", p.UUID, "marked", marked)
				continue
			}
		case Garbage:
		default:
			continue
		}
		if err := Destroy(p, cfg); err != nil {
			if errors.Is(err, errdefs.ErrBusy) {
				continue
			}
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(cfg.Out, "Garbage collecting pod %q\n", p.UUID)
	}
	return errors.Join(errs...)
}

// markWith moves an unlocked pod into a garbage state directory, holding
// its lock for the move so that nobody starts it meanwhile.
func (p *Pod) markWith(to stateDir) error {
	l, err := p.lockWhereSeen(0)
	if err != nil {
		return err
	}
	defer l.Close()
	if err := p.checkNoProcesses(); err != nil {
		return err
	}
	if err := p.move(to); err != nil {
		return err
	}
	p.State = stateFor(to, false)
	return nil
}

// checkNoProcesses fails with ErrBusy while a process of the pod lives,
// whether or not anyone holds its lock (see processesLive).
func (p *Pod) checkNoProcesses() error {
	if processesLive(p.Path()) {
		return fmt.Errorf("pod %s has live processes: %w", p.UUID, errdefs.ErrBusy)
	}
	return nil
}

// Destroy removes a pod for good: it runs the stage1 gc entrypoint, unmounts
// everything below the pod and deletes its directory. The pod must not be
// running; it is locked exclusively for the whole time.
func Destroy(p *Pod, cfg GCConfig) error {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	l, err := p.lockWhereSeen(0)
	if err != nil {
		return err
	}
	defer l.Close()
	// A pod marked before its last process ended (or by an older orbit)
	// waits for a later gc.
	if err := p.checkNoProcesses(); err != nil {
		return err
	}
	// A sandbox's app being added or removed is left for a later gc.
	if al, err := flock.Open(contract.AppsLock(p.Path())); err == nil {
		err = al.TryLock(flock.Exclusive)
		defer al.Close()
		if err != nil {
			return fmt.Errorf("pod %s: its apps are being changed: %w", p.UUID, err)
		}
	}
	// What stage1 made outside the pod directory (network namespaces and
	// CNI leases, cgroups) is recorded inside it: a pod whose stage1 gc
	// fails stays, so that a later gc runs it again instead of losing the
	// records.
	gcErr := runStage1GC(p, cfg)
	if err := unmountPod(p); err != nil {
		return fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	if gcErr != nil {
		return fmt.Errorf("pod %s: its stage1 gc failed, so it is kept for the next gc: %w", p.UUID, gcErr)
	}
	left, err := mountPointsBelow(p.Path())
	if err != nil {
		return err
	}
	if len(left) > 0 {
		// Never delete through a mount: it could be a volume from the host.
		return fmt.Errorf("pod %s: %s is still mounted after unmounting; not removing the pod", p.UUID, left[0])
	}
	if err := os.RemoveAll(p.Path()); err != nil {
		return fmt.Errorf("removing pod %s: %w", p.UUID, err)
	}
	return nil
}

// runStage1GC runs the pod's stage1 gc entrypoint, if it has one, with the
// stage1 rootfs mounted so the entrypoint can be found.
func runStage1GC(p *Pod, cfg GCConfig) error {
	s1, err := Stage1Of(p)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			// Nothing can be run for it, now or later.
			cfg.Log.Warn("no stage1 gc for the pod", "pod", p.UUID, "err", err)
		}
		return nil // or prepare failed before stage1 was laid out
	}
	entry, err := s1.Entrypoint(contract.GC)
	if err != nil {
		return nil
	}
	if rec, err := p.record(); err == nil && rec.Overlay && len(rec.Mounts) > 0 {
		if err := mountPod(p, &podRecord{Mounts: rec.Mounts[:1]}); err != nil {
			return err
		}
	}
	if _, err := os.Lstat(entry); errors.Is(err, fs.ErrNotExist) {
		// The stage1 rootfs was never laid out (a prepare killed before
		// it recorded its mounts), so stage1 never ran: nothing to undo.
		cfg.Log.Debug("no stage1 gc entrypoint in the pod", "pod", p.UUID, "entrypoint", entry)
		return nil
	}
	args := contract.GCArgs{Debug: cfg.Debug, UUID: p.UUID}
	cmd := exec.Command(entry, args.Args()...)
	cmd.Dir = p.Path()
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	return cmd.Run()
}

// Remove deletes a pod that is not running, at once (orbit rm).
func Remove(p *Pod, cfg GCConfig) error {
	switch p.State {
	case Running:
		return fmt.Errorf("pod %s is running; stop it first: %w", p.UUID, errdefs.ErrBusy)
	case Preparing, Deleting, ExitedDeleting:
		return fmt.Errorf("pod %s is %s: %w", p.UUID, p.State, errdefs.ErrBusy)
	case Exited:
		if err := p.markWith(dirExitedGarbage); err != nil {
			return err
		}
	case Prepared, AbortedPrepare, Embryo:
		if err := p.markWith(dirGarbage); err != nil {
			return err
		}
	}
	return Destroy(p, cfg)
}
