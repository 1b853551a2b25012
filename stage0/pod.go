// Package stage0 manages pods on disk: their directories, states and locks,
// their preparation from images, and handing them to stage1.
package stage0

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/flock"
)

// Pod is one pod directory as seen at one moment. States move on without
// notice (a pod exits whenever its stage1 does); a Pod that holds its lock
// (Pod.lock != nil) is the only exception.
type Pod struct {
	UUID    string
	podsDir string
	dir     stateDir
	State   State
	lock    *flock.Lock
	// sum is the pod's summary as List read it, if current (summary.go).
	sum *podSummary
	// created is CreatedAt as list found it (it never changes).
	created time.Time
}

// Path is the pod's directory now.
func (p *Pod) Path() string { return filepath.Join(p.podsDir, string(p.dir), p.UUID) }

// File is a path inside the pod's directory.
func (p *Pod) File(elem ...string) string {
	return filepath.Join(append([]string{p.Path()}, elem...)...)
}

// Close releases the pod's lock, if held.
func (p *Pod) Close() error {
	if p.lock == nil {
		return nil
	}
	err := p.lock.Close()
	p.lock = nil
	return err
}

func ensurePodsDirs(podsDir string) error {
	for _, d := range allStateDirs() {
		if err := os.MkdirAll(filepath.Join(podsDir, string(d)), 0o700); err != nil {
			return err
		}
	}
	return nil
}

// NewPod creates a pod directory in embryo, locks it and moves it to
// prepare. The returned Pod holds its lock; Close releases it.
func NewPod(podsDir string) (*Pod, error) {
	if err := ensurePodsDirs(podsDir); err != nil {
		return nil, fmt.Errorf("creating pods directory: %w", err)
	}
	id := uuid.New().String()
	p := &Pod{UUID: id, podsDir: podsDir, dir: dirEmbryo, State: Embryo}
	if err := os.Mkdir(p.Path(), 0o711); err != nil {
		return nil, fmt.Errorf("creating pod %s: %w", id, err)
	}
	l, err := flock.Open(p.Path())
	if err != nil {
		os.Remove(p.Path())
		return nil, err
	}
	// Wait for the lock rather than try it: the directory is new, so what
	// can hold it is only a command probing every pod's lock for a moment
	// (list, status, gc), never another owner.
	if err := l.Lock(context.Background(), flock.Exclusive); err != nil {
		l.Close()
		os.Remove(p.Path())
		return nil, err
	}
	p.lock = l
	if err := p.move(dirPrepare); err != nil {
		p.Close()
		os.Remove(p.Path())
		return nil, err
	}
	p.State = Preparing
	return p, nil
}

// move renames the pod's directory into another state directory. The
// rename is atomic, not durable: a pod does not outlive the machine's
// uptime (see "What is durable" in Documentation/design.md).
func (p *Pod) move(to stateDir) error {
	from := p.Path()
	dst := filepath.Join(p.podsDir, string(to), p.UUID)
	if err := os.Rename(from, dst); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("pod %s is no longer %s (another command moved it): %w", p.UUID, p.State, errdefs.ErrBusy)
		}
		return fmt.Errorf("moving pod %s to %s: %w", p.UUID, to, err)
	}
	p.dir = to
	return nil
}

// ToPrepared moves a pod that finished preparing to prepared and releases
// its lock.
func (p *Pod) ToPrepared() error {
	if p.dir != dirPrepare || p.lock == nil {
		return fmt.Errorf("pod %s: cannot become prepared from %s: %w", p.UUID, p.State, errdefs.ErrInvalid)
	}
	if err := p.move(dirPrepared); err != nil {
		return err
	}
	p.State = Prepared
	return p.Close()
}

// ToRun moves a pod that this process holds locked from prepare or prepared
// to run. The lock stays held: the pod is running as long as it is.
func (p *Pod) ToRun() error {
	if (p.dir != dirPrepare && p.dir != dirPrepared) || p.lock == nil {
		return fmt.Errorf("pod %s: cannot run from state %s: %w", p.UUID, p.State, errdefs.ErrInvalid)
	}
	if err := p.move(dirRun); err != nil {
		return err
	}
	p.State = Running
	return nil
}

// LockPrepared takes the exclusive lock on a prepared pod, as run-prepared
// does before moving it to run.
func (p *Pod) LockPrepared() error {
	if p.dir != dirPrepared {
		return fmt.Errorf("pod %s is %s, not prepared: %w", p.UUID, p.State, errdefs.ErrInvalid)
	}
	l, err := p.lockWhereSeen(probeGrace)
	if err != nil {
		return fmt.Errorf("pod %s is no longer prepared or is in use: %w", p.UUID, err)
	}
	p.lock = l
	return nil
}

// probeGrace is how long lockWhereSeen waits out other commands' brief
// probes of a pod's lock.
const probeGrace = 250 * time.Millisecond

// lockWhereSeen locks the pod exclusively in the state directory it was
// seen in, failing with ErrBusy if another process holds it or it has
// moved on since. A busy lock is tried again for up to grace: commands
// that look at every pod (list, status, gc) take its lock shared for a
// moment to see whether it is in use, and such a probe must not pass for
// an owner where that would fail a command (run-prepared); gc, which
// looks again next time, passes no grace.
func (p *Pod) lockWhereSeen(grace time.Duration) (*flock.Lock, error) {
	l, err := flock.Open(p.Path())
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("pod %s moved: %w", p.UUID, errdefs.ErrBusy)
		}
		return nil, err
	}
	err = l.TryLock(flock.Exclusive)
	if errors.Is(err, errdefs.ErrBusy) && grace > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		err = l.Lock(ctx, flock.Exclusive)
		if ctx.Err() != nil {
			err = errdefs.ErrBusy
		}
		cancel()
	}
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("pod %s is in use: %w", p.UUID, err)
	}
	// It may have moved between the open and the lock.
	if _, err := os.Stat(p.Path()); err != nil {
		l.Close()
		return nil, fmt.Errorf("pod %s moved: %w", p.UUID, errdefs.ErrBusy)
	}
	return l, nil
}

// LockFd hands out the held lock's descriptor for stage1
// (contract.LockFDEnv).
func (p *Pod) LockFd() (int, error) {
	if p.lock == nil {
		return -1, fmt.Errorf("pod %s: lock not held: %w", p.UUID, errdefs.ErrInvalid)
	}
	return p.lock.InheritableFd()
}

// Get finds a pod by UUID or unique UUID prefix in any state.
func Get(podsDir, idOrPrefix string) (*Pod, error) {
	want := strings.ToLower(strings.TrimSpace(idOrPrefix))
	if want == "" {
		return nil, fmt.Errorf("empty pod UUID: %w", errdefs.ErrInvalid)
	}
	if strings.ContainsAny(want, "/.") {
		return nil, fmt.Errorf("pod UUID %q: %w", idOrPrefix, errdefs.ErrInvalid)
	}
	var matches []string
	seen := map[string]bool{}
	for _, d := range allStateDirs() {
		ents, err := os.ReadDir(filepath.Join(podsDir, string(d)))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), want) && !seen[e.Name()] {
				seen[e.Name()] = true
				matches = append(matches, e.Name())
			}
		}
	}
	switch len(matches) {
	case 0:
		return nil, fmt.Errorf("pod %q: %w", idOrPrefix, errdefs.ErrNotFound)
	case 1:
	default:
		return nil, fmt.Errorf("pod UUID prefix %q matches %d pods: %w", idOrPrefix, len(matches), errdefs.ErrAmbiguous)
	}
	return load(podsDir, matches[0])
}

// load finds a pod by its full UUID, following it if it moves while we look.
func load(podsDir, id string) (*Pod, error) {
	return loadSeenIn(podsDir, id, "")
}

// loadSeenIn is load for a pod just seen in state directory seen, which
// is looked in first (a listing of many pods then makes one open per pod
// rather than one per state directory before it); when the pod has moved
// on, the state directories are looked through in order, as load does.
func loadSeenIn(podsDir, id string, seen stateDir) (*Pod, error) {
	dirs := allStateDirs()
	if seen != "" {
		dirs = append([]stateDir{seen}, dirs...)
	}
	for attempt := 0; attempt < 3; attempt++ {
		for _, d := range dirs {
			path := filepath.Join(podsDir, string(d), id)
			locked, err := lockedByOther(path)
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return nil, fmt.Errorf("pod %s: %w", id, err)
			}
			// The pod may have moved on between the open and the lock test.
			if _, err := os.Stat(path); err != nil {
				continue
			}
			// A pod in run whose lock nobody holds is still running while
			// any of its processes lives.
			if d == dirRun && !locked {
				locked = processesLive(path)
			}
			return &Pod{UUID: id, podsDir: podsDir, dir: d, State: stateFor(d, locked)}, nil
		}
	}
	return nil, fmt.Errorf("pod %s: %w", id, errdefs.ErrNotFound)
}

// List returns every pod, oldest first.
func List(podsDir string) ([]*Pod, error) {
	return list(podsDir, allStateDirs(), true)
}

// list returns the pods in the state directories dirs, oldest first; with
// summaries, each pod's current summary is read (for ReadStatuses).
func list(podsDir string, dirs []stateDir, summaries bool) ([]*Pod, error) {
	var ids []string
	var in []stateDir
	seen := map[string]bool{}
	for _, d := range dirs {
		ents, err := os.ReadDir(filepath.Join(podsDir, string(d)))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		for _, e := range ents {
			if seen[e.Name()] || uuid.Validate(e.Name()) != nil {
				continue
			}
			seen[e.Name()] = true
			ids, in = append(ids, e.Name()), append(in, d)
		}
	}
	// Each load is a few system calls (a lock test, and the pod's cgroups
	// for one in run): several at once. A prepared pod's state does not
	// depend on its lock, so it is not probed; its summary, read here for
	// the time it was made, is kept for ReadStatuses.
	loaded, errs := make([]*Pod, len(ids)), make([]error, len(ids))
	created := make([]time.Time, len(ids))
	inParallel(len(ids), func(i int) {
		if in[i] == dirPrepared {
			p := &Pod{UUID: ids[i], podsDir: podsDir, dir: dirPrepared, State: Prepared}
			if summaries {
				if p.sum = p.summary(); p.sum != nil {
					loaded[i], created[i] = p, p.sum.CreatedAt
					p.created = created[i]
					return
				}
			} else if created[i] = p.CreatedAt(); !created[i].IsZero() {
				loaded[i], p.created = p, created[i]
				return
			}
		}
		if loaded[i], errs[i] = loadSeenIn(podsDir, ids[i], in[i]); errs[i] == nil {
			if summaries {
				loaded[i].sum = loaded[i].summary()
			}
			if loaded[i].sum != nil {
				created[i] = loaded[i].sum.CreatedAt
			} else {
				created[i] = loaded[i].CreatedAt()
			}
			loaded[i].created = created[i]
		}
	})
	var pods []*Pod
	when := map[*Pod]time.Time{}
	for i, p := range loaded {
		if err := errs[i]; err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				continue // removed while we looked
			}
			return nil, err
		}
		pods = append(pods, p)
		when[p] = created[i]
	}
	sort.SliceStable(pods, func(i, j int) bool { return when[pods[i]].Before(when[pods[j]]) })
	return pods, nil
}

// CreatedAt is when the pod directory was made.
func (p *Pod) CreatedAt() time.Time {
	if !p.created.IsZero() {
		return p.created
	}
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, p.Path(), 0, unix.STATX_BTIME, &st); err == nil && st.Mask&unix.STATX_BTIME != 0 {
		return time.Unix(st.Btime.Sec, int64(st.Btime.Nsec))
	}
	if rec, err := p.record(); err == nil && !rec.CreatedAt.IsZero() {
		return rec.CreatedAt
	}
	fi, err := os.Stat(p.Path())
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}
