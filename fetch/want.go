package fetch

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/insecure"
	"github.com/orbit-containers/orbit/store"
)

// want is what the caller expects of an image it fetches.
type want struct {
	name types.ACIdentifier // "" when any name will do
	// labels must all be on the image with these values; nil when any
	// labels will do.
	labels types.Labels
	id     string // "" when any ID will do
	latest bool   // mark it the latest of its name
	// explicit says the user named the signature's location, or the image
	// URL it lies beside, so plain HTTP is allowed for it without
	// --insecure-options=http, and a signature location that is not a URL
	// may be read as a local file.
	explicit bool
}

// wantLabels is what an image found for a name with these labels must
// carry: every label asked for (with the os and arch defaults discovery
// filled in), except that version=latest asks for no particular version,
// the newest one the publisher serves.
func wantLabels(asked map[types.ACIdentifier]string) (types.Labels, error) {
	m := make(map[types.ACIdentifier]string, len(asked))
	for k, v := range asked {
		if k == "version" && v == "latest" {
			continue
		}
		m[k] = v
	}
	return types.LabelsFromMap(m)
}

// check refuses an image whose name or labels are not those asked for.
// An image served for a name must be that name at that version, os and
// arch: a correctly signed image of another version or arch, served by a
// compromised mirror, is refused, not cached under the URL.
func (w want) check(source string, name types.ACIdentifier, labels types.Labels) error {
	if w.name != "" && name != w.name {
		return fmt.Errorf("image %s is named %s, not %s as asked for: %w", source, name, w.name, errdefs.ErrUntrusted)
	}
	for _, l := range w.labels {
		got, ok := labels.Get(l.Name.String())
		if !ok {
			return fmt.Errorf("image %s from %s has no %s label, but %s=%s was asked for: %w",
				name, source, l.Name, l.Name, l.Value, errdefs.ErrUntrusted)
		}
		if got != l.Value {
			return fmt.Errorf("image %s from %s has %s=%s, not %s=%s as asked for: %w",
				name, source, l.Name, got, l.Name, l.Value, errdefs.ErrUntrusted)
		}
	}
	return nil
}

// checkStored is check for an image already in the store, with its ID.
func (w want) checkStored(source string, img store.Image) error {
	if err := w.check(source, img.Name, img.Labels); err != nil {
		return err
	}
	if w.id != "" && !strings.HasPrefix(img.ID, strings.ToLower(w.id)) {
		return fmt.Errorf("image %s from %s has ID %s, not %s as its dependent requires: %w", img.Name, source, img.ID, w.id, errdefs.ErrUntrusted)
	}
	return nil
}

// discoveredURL parses a location a discovery page offers for an image
// or its signature. The page is remote input: the location must be an
// http(s) URL, allowed by the same scheme rules as any download, and is
// never read as a file on this machine.
func discoveredURL(what, loc string, opts insecure.Options) (*url.URL, error) {
	u, err := url.Parse(loc)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("discovery offers %s location %q, which is not an http(s) URL: %w", what, loc, errdefs.ErrUntrusted)
	}
	if err := checkScheme(u, false, opts); err != nil {
		return nil, err
	}
	return u, nil
}

// unverifiedError refuses a stored image that was admitted without a
// signature check, for a command that verifies.
func unverifiedError(display string, img store.Image) error {
	return fmt.Errorf("image %s (%s) was stored without signature verification: fetch it again with its signature (--pull-policy=update for a name or URL), or use it unverified with --insecure-options=image: %w",
		display, store.ShortID(img.ID), errdefs.ErrUntrusted)
}
