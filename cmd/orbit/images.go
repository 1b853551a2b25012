package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/appc/spec/schema"

	"github.com/orbit-containers/orbit/fetch"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/store"
)

// openStore opens the image store under --dir, with the limits the
// configuration sets.
func (g *globalOptions) openStore() (*store.Store, error) {
	limits, err := g.storeLimits()
	if err != nil {
		return nil, err
	}
	s, err := store.Open(g.storeDir())
	if err != nil {
		return nil, err
	}
	return s.WithLimits(limits), nil
}

// resolveImage opens the store and finds a stored image by ID, ID prefix
// or name, for the commands about one image.
func (g *globalOptions) resolveImage(ref string) (*store.Store, store.Image, error) {
	s, err := g.openStore()
	if err != nil {
		return nil, store.Image{}, err
	}
	img, err := s.Resolve(ref)
	return s, img, err
}

// newFetcher builds a fetcher from the global options.
func (g *globalOptions) newFetcher(st *store.Store, trustKeysFromHTTPS bool) (*fetch.Fetcher, error) {
	// ORBIT_STALL_TIMEOUT (a Go duration) shortens or lengthens how long a
	// registry may send nothing mid-response.
	var stall time.Duration
	if v := os.Getenv("ORBIT_STALL_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("ORBIT_STALL_TIMEOUT=%q: want a positive duration such as 30s: %w", v, errdefs.ErrInvalid)
		}
		stall = d
	}
	return fetch.New(fetch.Config{
		StallTimeout:       stall,
		Store:              st,
		Insecure:           g.Insecure,
		TrustKeysFromHTTPS: trustKeysFromHTTPS,
		LocalConfig:        g.LocalConfig,
		SystemConfig:       g.SystemConfig,
		UserConfig:         g.UserConfig,
		Stderr:             g.Stderr,
		Log:                g.Log,
	})
}

// storeTrees lets stage0 take rendered trees from the image store, and
// remembers which images a pod used.
type storeTrees struct {
	s    *store.Store
	used *[]string
}

func newStoreTrees(s *store.Store) storeTrees { return storeTrees{s: s, used: new([]string)} }

func (t storeTrees) Tree(ctx context.Context, imageID string) (string, string, func() error, error) {
	tr, err := t.s.Tree(ctx, imageID)
	if err != nil {
		return "", "", nil, err
	}
	*t.used = append(*t.used, imageID)
	return tr.ID, tr.Path, tr.Release, nil
}

// touchUsed records the use of every image the pod took, in one index
// update.
func (t storeTrees) touchUsed(log interface{ Debug(string, ...any) }) {
	if len(*t.used) == 0 {
		return
	}
	if err := t.s.Touch(*t.used...); err != nil {
		log.Debug("recording image use", "err", err)
	}
}

func (t storeTrees) Manifest(imageID string) (*schema.ImageManifest, error) {
	return t.s.Manifest(imageID)
}
