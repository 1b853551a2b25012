package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/appc/spec/schema"

	"github.com/orbit-containers/orbit/fetch"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage0"
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

func (t storeTrees) Tree(ctx context.Context, imageID string) (stage0.TreeRef, func() error, error) {
	tr, err := t.s.Tree(ctx, imageID)
	if err != nil {
		return stage0.TreeRef{}, nil, err
	}
	*t.used = append(*t.used, imageID)
	return stage0.TreeRef{ID: tr.ID, Lowers: tr.Lowers, Layered: tr.Layered}, tr.Release, nil
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

// fetchImage fetches one image for a command, rewording a name that
// discovery cannot find with what the store holds under that name: the
// usual cause is a misspelled name or version.
func fetchImage(ctx context.Context, f *fetch.Fetcher, st *store.Store, ref string, policy fetch.PullPolicy, sig string) (string, error) {
	id, err := f.Fetch(ctx, ref, policy, sig)
	if err != nil {
		return "", explainNotDiscoverable(st, ref, err)
	}
	return id, nil
}

// notDiscoverable is the reworded error; --debug still shows each
// discovery attempt through its chain.
type notDiscoverable struct {
	msg string
	err error
}

func (e *notDiscoverable) Error() string { return e.msg }
func (e *notDiscoverable) Unwrap() error { return e.err }

func explainNotDiscoverable(st *store.Store, ref string, err error) error {
	var nd *fetch.NotDiscoverableError
	if !errors.As(err, &nd) {
		return err
	}
	var same, similar []string
	if images, lerr := st.List(); lerr == nil {
		for _, img := range images {
			name := img.Name.String()
			switch {
			case name == nd.Name:
				same = appendNew(same, printable(imageName(img)))
			case editDistance(name, nd.Name) <= 2:
				similar = appendNew(similar, printable(imageName(img)))
			}
		}
	}
	msg := fmt.Sprintf("image %s is not in the store and not discoverable: appc discovery of %s found nothing (%s)%s", ref, nd.Name, rootCauses(nd.Causes), nd.Hint)
	switch {
	case len(same) > 0:
		msg += "; stored images with that name: " + strings.Join(same, ", ")
	case len(similar) > 0:
		msg += "; stored images with a similar name: " + strings.Join(similar, ", ")
	default:
		msg += "; no stored image has that name (see 'orbit image list')"
	}
	return &notDiscoverable{msg: msg, err: err}
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// editDistance is the Levenshtein distance of two names.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// rootCauses words what discovery's attempts met, without the URLs the
// attempts were for ("cannot resolve example.com", "tls: failed to verify
// certificate: x509: ..."), each once, at most two; --debug shows every
// attempt.
func rootCauses(errs []error) string {
	var out []string
	for _, err := range errs {
		msg := err.Error()
		var dns *net.DNSError
		var ue *url.Error
		switch {
		case errors.As(err, &dns):
			msg = "cannot resolve " + dns.Name
		case errors.As(err, &ue):
			msg = ue.Err.Error()
		}
		if !slices.Contains(out, msg) {
			out = append(out, msg)
		}
	}
	switch {
	case len(out) == 0:
		return "--debug says why"
	case len(out) > 2:
		out = append(out[:2], "--debug says more")
	}
	return strings.Join(out, "; ")
}
