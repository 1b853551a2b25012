package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/flock"
)

// An image lease keeps an image in the store while a command that has
// resolved it gets it into a pod. It is a shared flock(2) on
// cas/leases/<imageID>, taken when the image is found or imported and
// dropped once the pod records the trees it uses (from then on the pod's
// references keep the trees, and gc keeps the images of trees pods use).
// Removing an image takes the same file exclusively without waiting, so
// `image rm` and `image gc` leave a leased image alone. A lease is a lock
// held by a live process: a killed orbit leaves nothing that blocks
// removal, at most a lease file that gc deletes.
//
// See Documentation/design.md, "Image leases".

// leaseAttempts bounds how often a lookup by name starts again when the
// image it found is removed before it could be leased.
const leaseAttempts = 10

// removalLock, in the leases directory, makes removals take turns.
const removalLock = ".removing"

// Leases are the images one process holds. Release drops them all.
type Leases struct {
	dir  string
	mu   sync.Mutex
	held map[string]*flock.Lock
}

// Leasing returns a view of the store in which every image that Get,
// FindByName, Resolve, ResolveName (dependencies) and Import return, or
// that Tree renders, is leased to the caller until leases.Release. A
// command that makes a pod looks its images up through it.
func (s *Store) Leasing() (*Store, *Leases) {
	c := *s
	c.leases = &Leases{dir: s.leasesDir(), held: map[string]*flock.Lock{}}
	return &c, c.leases
}

// Release drops every lease. It is safe to call more than once, and on nil.
func (l *Leases) Release() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for id, fl := range l.held {
		errs = append(errs, fl.Close())
		delete(l.held, id)
	}
	return errors.Join(errs...)
}

func (s *Store) leasesDir() string { return filepath.Join(s.dir, "leases") }
func (s *Store) leasePath(id string) string {
	return filepath.Join(s.leasesDir(), id)
}

// lease takes a shared lease on a full image ID for s's holder (nothing
// when s is not leasing) and reports whether the image is still indexed:
// when it is not, it was removed between being found and being leased,
// and the lease is dropped again. It never runs inside an index
// transaction: it may wait for a removal to finish.
func (s *Store) lease(id string) (indexed bool, err error) {
	if s.leases == nil {
		return true, nil
	}
	if err := s.hold(id); err != nil {
		return false, err
	}
	err = s.view(func(tx *bolt.Tx) error {
		_, indexed, err = getRecord(tx, id)
		return err
	})
	if err == nil && !indexed {
		s.leases.drop(id)
	}
	return indexed, err
}

// hold takes the lease on id unless s's holder has it already. Import
// calls it before the index learns about the image, so no removal can
// come in between.
func (s *Store) hold(id string) error {
	if s.leases == nil {
		return nil
	}
	s.leases.mu.Lock()
	_, ok := s.leases.held[id]
	s.leases.mu.Unlock()
	if ok {
		return nil
	}
	l, err := flock.Acquire(context.Background(), s.leasePath(id), flock.Shared) // brief: only a removal holds it
	if err != nil {
		return fmt.Errorf("leasing image %s: %w", id, err)
	}
	s.leases.mu.Lock()
	defer s.leases.mu.Unlock()
	if _, dup := s.leases.held[id]; dup {
		l.Close()
		return nil
	}
	s.leases.held[id] = l
	return nil
}

func (l *Leases) drop(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if fl, ok := l.held[id]; ok {
		fl.Close()
		delete(l.held, id)
	}
}

// takeForRemoval takes an image's lease exclusively without waiting: it
// fails with errdefs.ErrBusy while any command holds the image.
func (s *Store) takeForRemoval(id string) (*flock.Lock, error) {
	l, err := flock.TryAcquire(s.leasePath(id), flock.Exclusive)
	if errors.Is(err, errdefs.ErrBusy) {
		return nil, fmt.Errorf("an orbit command is making a pod from it: %w", errdefs.ErrBusy)
	}
	return l, err
}

// gcLeases removes the lease files of images that are not indexed and
// that nobody holds.
func (s *Store) gcLeases(indexed map[string]bool) error {
	entries, err := os.ReadDir(s.leasesDir())
	if err != nil {
		return err
	}
	for _, e := range entries {
		id := e.Name()
		if indexed[id] {
			continue
		}
		if !ValidID(id) {
			if strings.HasPrefix(id, ".") {
				continue
			}
			os.Remove(filepath.Join(s.leasesDir(), id))
			continue
		}
		l, err := flock.TryAcquire(s.leasePath(id), flock.Exclusive)
		if err != nil {
			continue
		}
		l.Remove()
		l.Close()
	}
	return nil
}
