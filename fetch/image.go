package fetch

import (
	"context"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/appc/spec/discovery"
	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/aci"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/insecure"
	"github.com/orbit-containers/orbit/store"
)

// contextReader fails its reads once ctx is done, so that Ctrl-C stops
// checking or importing a large image file at once (the import then
// removes what it wrote).
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// maxDepth bounds a chain of dependencies.
const maxDepth = 32

// chain is the dependency path being fetched, to catch cycles.
type chain []string

func newChain() chain { return nil }

func (c chain) with(name string) (chain, error) {
	for _, n := range c {
		if n == name {
			return nil, fmt.Errorf("dependency cycle: %s -> %s: %w", strings.Join(c, " -> "), name, errdefs.ErrInvalid)
		}
	}
	if len(c) >= maxDepth {
		return nil, fmt.Errorf("dependencies nested deeper than %d: %s: %w", maxDepth, strings.Join(c, " -> "), errdefs.ErrInvalid)
	}
	return append(append(chain(nil), c...), name), nil
}

// fetchName finds an image by name: in the store unless the policy says
// update, else by discovery.
func (f *Fetcher) fetchName(ctx context.Context, app *discovery.App, policy PullPolicy, sig string, c chain) (store.Image, error) {
	labels, err := types.LabelsFromMap(app.Labels)
	if err != nil {
		return store.Image{}, fmt.Errorf("image %s: %w: %w", app, err, errdefs.ErrInvalid)
	}
	display := store.FormatName(app.Name, labels)
	if policy != PullUpdate {
		img, err := f.cfg.Store.FindByName(app.Name, labels)
		if err == nil {
			f.log.Debug("using stored image", "image", display, "id", img.ID)
			return f.useStored(ctx, img, display, policy, c)
		}
		if !errors.Is(err, errdefs.ErrNotFound) {
			return store.Image{}, err
		}
		if policy == PullNever {
			return store.Image{}, fmt.Errorf("image %s is not in the store and --pull-policy=never: %w", display, errdefs.ErrNotFound)
		}
	}
	_, latest := app.Labels["version"]
	latest = !latest || app.Labels["version"] == "latest"

	dapp := app.Copy()
	goos, goarch := appcOSArch()
	if _, ok := dapp.Labels["os"]; !ok {
		dapp.Labels["os"] = goos
	}
	if _, ok := dapp.Labels["arch"]; !ok {
		dapp.Labels["arch"] = goarch
	}
	if _, ok := dapp.Labels["version"]; !ok {
		dapp.Labels["version"] = "latest"
	}
	required, err := wantLabels(dapp.Labels)
	if err != nil {
		return store.Image{}, fmt.Errorf("image %s: %w: %w", display, err, errdefs.ErrInvalid)
	}
	f.log.Info("searching for app image", "image", display)
	d, err := f.discover(ctx, dapp, f.cfg.Insecure.Has(insecure.HTTP), func(d *discovered) bool { return len(d.Endpoints) > 0 })
	if err != nil {
		return store.Image{}, fmt.Errorf("image %s: %w", display, err)
	}
	if f.cfg.TrustKeysFromHTTPS && !f.cfg.Insecure.Has(insecure.Image) {
		if err := f.trustOnFirstUse(ctx, dapp, d); err != nil {
			return store.Image{}, err
		}
	}
	var errs []error
	for _, ep := range d.Endpoints {
		u, asc, err := f.endpoint(ep, sig == "")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		where := sig
		if where == "" {
			where = asc
		}
		img, err := f.fetchURL(ctx, u, where, PullUpdate, want{name: app.Name, labels: required, latest: latest, explicit: sig != ""}, c)
		if err == nil {
			return img, nil
		}
		// A refused image is final; a server that did not answer is not.
		if errors.Is(err, errdefs.ErrUntrusted) || errors.Is(err, errdefs.ErrInvalid) || ctx.Err() != nil {
			return store.Image{}, err
		}
		errs = append(errs, err)
	}
	return store.Image{}, fmt.Errorf("image %s: no discovered location worked: %w", display, errors.Join(errs...))
}

// fetchURL fetches an image from an http(s) URL, reusing the stored image
// while the server's caching headers allow it.
func (f *Fetcher) fetchURL(ctx context.Context, u *url.URL, sig string, policy PullPolicy, w want, c chain) (store.Image, error) {
	key := u.String()
	var cached *store.Image
	rem, err := f.cfg.Store.GetRemote(key)
	switch {
	case err == nil:
		if img, err := f.cfg.Store.Get(rem.ImageID); err == nil {
			cached = &img
		}
	case !errors.Is(err, errdefs.ErrNotFound):
		return store.Image{}, err
	}
	if cached != nil {
		// What the URL gave last time is no use if it is not what is asked
		// for now, nor, under update, if it was never verified: download
		// it again (without the ETag) and check it like any new image.
		if err := w.checkStored(u.Redacted(), *cached); err != nil {
			f.log.Debug("stored image for URL is not the one asked for", "url", u.Redacted(), "id", cached.ID, "err", err)
			cached = nil
		} else if policy == PullUpdate && !cached.Verified() && !f.cfg.Insecure.Has(insecure.Image) {
			f.log.Debug("stored image for URL was not verified; downloading it again", "url", u.Redacted(), "id", cached.ID)
			cached = nil
		}
	}
	if cached != nil {
		fresh := rem.MaxAge > 0 && f.now().Before(rem.DownloadedAt.Add(rem.MaxAge))
		if policy != PullUpdate || fresh {
			f.log.Debug("using stored image for URL", "url", u.Redacted(), "id", cached.ID)
			return f.useStored(ctx, *cached, u.Redacted(), policy, c)
		}
	} else if policy == PullNever {
		return store.Image{}, fmt.Errorf("image %s is not in the store and --pull-policy=never: %w", u.Redacted(), errdefs.ErrNotFound)
	}

	etag := ""
	if cached != nil {
		etag = rem.ETag
	}
	f.log.Info("fetching image", "url", u.Redacted())
	dl, err := f.downloadImage(ctx, u, etag)
	if err != nil {
		return store.Image{}, err
	}
	defer dl.Close()
	if dl.NotModified {
		rem.MaxAge, rem.ETag, rem.DownloadedAt = dl.Cache.MaxAge, dl.Cache.ETag, f.now()
		if err := f.cfg.Store.PutRemote(rem); err != nil {
			return store.Image{}, err
		}
		f.log.Debug("image not modified", "url", u.Redacted(), "id", cached.ID)
		return f.useStored(ctx, *cached, u.Redacted(), policy, c)
	}

	var signature []byte
	where := sig
	if !f.cfg.Insecure.Has(insecure.Image) {
		if where == "" {
			su := *u
			su.Path += ".asc"
			su.RawPath = ""
			where = su.String()
		}
		signature, err = f.readSignature(ctx, where, true, w.explicit)
		if err != nil {
			return store.Image{}, err
		}
	}
	img, err := f.admit(ctx, dl.File, signature, where, u.Redacted(), w, c)
	if err != nil && dl.Resumed && ctx.Err() == nil {
		// The kept part and the rest may be of two versions of the image
		// (a server that gave no validator to check): start over.
		f.log.Warn("the resumed download is not a valid image; downloading it again whole", "url", u.Redacted(), "err", err)
		dl.Close()
		if dl, err = f.downloadImage(ctx, u, ""); err != nil {
			return store.Image{}, err
		}
		defer dl.Close()
		img, err = f.admit(ctx, dl.File, signature, where, u.Redacted(), w, c)
	}
	if err != nil {
		return store.Image{}, err
	}
	err = f.cfg.Store.PutRemote(store.Remote{
		URL: key, ImageID: img.ID, ETag: dl.Cache.ETag, MaxAge: dl.Cache.MaxAge, DownloadedAt: f.now(),
	})
	if err != nil {
		return store.Image{}, err
	}
	return img, nil
}

// admit checks an image's bytes as served (file, at its start) and, when
// they pass, fetches its dependencies and imports it. Nothing enters the
// store before the signature has been checked.
func (f *Fetcher) admit(ctx context.Context, file *os.File, signature []byte, sigWhere, source string, w want, c chain) (store.Image, error) {
	manifest, err := readManifest(file)
	if err != nil {
		return store.Image{}, fmt.Errorf("image %s: %w", source, err)
	}
	name := manifest.Name
	if err := w.check(source, name, manifest.Labels); err != nil {
		return store.Image{}, err
	}
	signedBy := store.Unverified
	if f.cfg.Insecure.Has(insecure.Image) {
		f.log.Warn("signature verification has been disabled", "image", name.String(), "from", source)
	} else {
		if signature == nil {
			return store.Image{}, fmt.Errorf("image %s (%s) has no signature at %s: pass its signature with --signature, or skip verification with --insecure-options=image: %w",
				name, source, sigWhere, errdefs.ErrUntrusted)
		}
		if _, err := file.Seek(0, io.SeekStart); err != nil {
			return store.Image{}, err
		}
		signer, err := f.keystore.Verify(name, contextReader{ctx, file}, strings.NewReader(string(signature)))
		if err != nil {
			return store.Image{}, err
		}
		f.log.Info("signature verified", "image", name.String(), "key", signer.Fingerprint, "by", strings.Join(signer.Identities, ", "))
		signedBy = signer.Fingerprint
	}
	if w.id != "" {
		got, err := imageID(file, f.cfg.Store.MaxImageSize())
		if err != nil {
			return store.Image{}, fmt.Errorf("image %s: %w", source, err)
		}
		if !strings.HasPrefix(got, strings.ToLower(w.id)) {
			return store.Image{}, fmt.Errorf("image %s from %s has ID %s, not %s as its dependent requires: %w", name, source, got, w.id, errdefs.ErrUntrusted)
		}
	}
	c, err = c.with(name.String())
	if err != nil {
		return store.Image{}, err
	}
	if err := f.fetchDependencies(ctx, manifest, PullNew, c); err != nil {
		return store.Image{}, fmt.Errorf("image %s: %w", name, err)
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return store.Image{}, err
	}
	img, err := f.cfg.Store.Import(contextReader{ctx, file}, store.ImportOptions{Latest: w.latest, Signer: signedBy})
	if err != nil {
		return store.Image{}, err
	}
	return img, nil
}

// useStored checks an image found in the store (by name, or as what a URL
// gave before) before a command uses it: one admitted without a signature
// check is refused unless this command skips verification too, and its
// dependencies must be available and pass the same checks.
func (f *Fetcher) useStored(ctx context.Context, img store.Image, display string, policy PullPolicy, c chain) (store.Image, error) {
	if !img.Verified() {
		if !f.cfg.Insecure.Has(insecure.Image) {
			return store.Image{}, unverifiedError(display, img)
		}
		f.log.Warn("using an image stored without signature verification", "image", display, "id", img.ID)
	}
	c, err := c.with(img.Name.String())
	if err != nil {
		return store.Image{}, err
	}
	if policy == PullUpdate {
		policy = PullNew
	}
	if err := f.fetchDependencies(ctx, img.Manifest, policy, c); err != nil {
		return store.Image{}, fmt.Errorf("image %s: %w", img.Name, err)
	}
	return img, nil
}

// fetchDependencies makes every dependency of manifest available in the
// store, fetched and verified like the image itself. policy is PullNew,
// or PullNever to look in the store only.
func (f *Fetcher) fetchDependencies(ctx context.Context, manifest *schema.ImageManifest, policy PullPolicy, c chain) error {
	for _, dep := range manifest.Dependencies {
		if dep.ImageID != nil && !dep.ImageID.Empty() {
			if _, err := f.cfg.Store.Get(dep.ImageID.String()); err == nil {
				continue
			}
		}
		labels := map[types.ACIdentifier]string{}
		for _, l := range dep.Labels {
			labels[l.Name] = l.Value
		}
		app, err := discovery.NewApp(dep.ImageName.String(), labels)
		if err != nil {
			return fmt.Errorf("dependency %s: %w: %w", dep.ImageName, err, errdefs.ErrInvalid)
		}
		if dep.ImageID == nil || dep.ImageID.Empty() {
			if _, err := f.fetchName(ctx, app, policy, "", c); err != nil {
				return fmt.Errorf("dependency %s: %w", dep.ImageName, err)
			}
			continue
		}
		if policy == PullNever {
			return fmt.Errorf("dependency %s (%s) is not in the store and --pull-policy=never: %w", dep.ImageName, dep.ImageID, errdefs.ErrNotFound)
		}
		if err := f.fetchDependencyByID(ctx, app, dep.ImageID.String(), c); err != nil {
			return fmt.Errorf("dependency %s (%s): %w", dep.ImageName, dep.ImageID, err)
		}
	}
	return nil
}

// fetchDependencyByID discovers a dependency pinned to an image ID and
// accepts only that image.
func (f *Fetcher) fetchDependencyByID(ctx context.Context, app *discovery.App, id string, c chain) error {
	// The ID pins the content; the labels the dependent declares must
	// still be on it.
	required, err := wantLabels(app.Labels)
	if err != nil {
		return fmt.Errorf("%w: %w", err, errdefs.ErrInvalid)
	}
	dapp := app.Copy()
	goos, goarch := appcOSArch()
	for k, v := range map[types.ACIdentifier]string{"os": goos, "arch": goarch, "version": "latest"} {
		if _, ok := dapp.Labels[k]; !ok {
			dapp.Labels[k] = v
		}
	}
	d, err := f.discover(ctx, dapp, f.cfg.Insecure.Has(insecure.HTTP), func(d *discovered) bool { return len(d.Endpoints) > 0 })
	if err != nil {
		return err
	}
	var errs []error
	for _, ep := range d.Endpoints {
		u, asc, err := f.endpoint(ep, true)
		if err == nil {
			_, err = f.fetchURL(ctx, u, asc, PullUpdate, want{name: app.Name, labels: required, id: id}, c)
		}
		if err == nil {
			return nil
		}
		if errors.Is(err, errdefs.ErrUntrusted) || errors.Is(err, errdefs.ErrInvalid) || ctx.Err() != nil {
			return err
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// endpoint checks the image and, when it will be used, signature
// locations a discovery page offered.
func (f *Fetcher) endpoint(ep endpoint, useASC bool) (*url.URL, string, error) {
	u, err := discoveredURL("image", ep.ACI, f.cfg.Insecure)
	if err != nil {
		return nil, "", err
	}
	if !useASC || f.cfg.Insecure.Has(insecure.Image) {
		return u, "", nil
	}
	asc, err := discoveredURL("signature", ep.ASC, f.cfg.Insecure)
	if err != nil {
		return nil, "", err
	}
	return u, asc.String(), nil
}

// readManifest reads the manifest of an image file, from its start.
func readManifest(file *os.File) (*schema.ImageManifest, error) {
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	tr, err := aci.Decompress(file)
	if err != nil {
		return nil, err
	}
	defer tr.Close()
	return aci.ReadManifest(tr)
}

// imageID computes the appc image ID of an image file.
// Reading stops at limit bytes of uncompressed data.
func imageID(file *os.File, limit int64) (string, error) {
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	tr, err := aci.Decompress(file)
	if err != nil {
		return "", err
	}
	defer tr.Close()
	h := sha512.New()
	n, err := io.Copy(h, io.LimitReader(tr, limit+1))
	if err != nil {
		return "", err
	}
	if n > limit {
		return "", fmt.Errorf("image is larger than the limit of %s uncompressed: %w", store.FormatSize(limit), errdefs.ErrInvalid)
	}
	return aci.ImageID(h), nil
}
