package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/orbit-containers/orbit/aci/oci"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/insecure"
	"github.com/orbit-containers/orbit/store"
)

// DefaultStallTimeout is how long a registry may send nothing in the
// middle of a response before the download is abandoned.
const DefaultStallTimeout = 60 * time.Second

// maxManifestSize bounds a manifest or index from a registry.
const maxManifestSize = 4 << 20

// dockerKey is the remotes-bucket key recording what a docker reference
// gave last time.
func dockerKey(ref name.Reference) string { return "docker://" + ref.Name() }

// fetchDocker fetches an image from a registry: the manifest (an index
// resolved to linux and this machine's architecture), its signature
// checked before any layer is admitted, the layers the store lacks, then
// the conversion.
func (f *Fetcher) fetchDocker(ctx context.Context, r ociRef, policy PullPolicy) (string, error) {
	display := r.raw
	key := dockerKey(r.ref)
	if policy != PullUpdate {
		if rem, err := f.cfg.Store.GetRemote(key); err == nil {
			if img, err := f.cfg.Store.Get(rem.ImageID); err == nil {
				stored, err := f.useStored(ctx, img, display, PullNew, newChain())
				if err != nil {
					return "", err
				}
				return stored.ID, nil
			}
		} else if !errors.Is(err, errdefs.ErrNotFound) {
			return "", err
		}
		if policy == PullNever {
			return "", fmt.Errorf("image %s is not in the store and --pull-policy=never: %w", display, errdefs.ErrNotFound)
		}
	}
	ref := r.ref
	opts, err := f.remoteOptions(ctx, ref.Context().Registry)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", display, err)
	}
	f.log.Info("fetching image", "image", display)
	desc, err := remote.Get(ref, opts...)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", display, registryError(err))
	}
	if d, ok := ref.(name.Digest); ok && desc.Digest.String() != d.DigestStr() {
		return "", fmt.Errorf("image %s: the registry sent a manifest with digest %s: %w", display, desc.Digest, errdefs.ErrUntrusted)
	}
	if len(desc.Manifest) > maxManifestSize {
		return "", fmt.Errorf("image %s: manifest larger than %d bytes: %w", display, maxManifestSize, errdefs.ErrInvalid)
	}
	signer := store.Unverified
	if f.cfg.Insecure.Has(insecure.Image) {
		f.log.Warn("signature verification has been disabled", "image", display)
	} else {
		signer, err = f.verifyDocker(ctx, ref, desc, opts)
		if err != nil {
			return "", fmt.Errorf("image %s: %w", display, err)
		}
	}
	img, err := desc.Image()
	if err != nil {
		return "", fmt.Errorf("image %s: %w", display, registryError(err))
	}
	manifestDigest, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("image %s: %w", display, registryError(err))
	}
	info := oci.Info{
		Name:           ref.Context().Name(),
		Registry:       ref.Context().RegistryStr(),
		Repository:     ref.Context().RepositoryStr(),
		Source:         display,
		ManifestDigest: manifestDigest.String(),
	}
	if t, ok := ref.(name.Tag); ok {
		info.Tag = t.TagStr()
	}
	stored, err := f.storeRemoteImage(ctx, img, info, signer)
	if err != nil {
		return "", fmt.Errorf("image %s: %w", display, err)
	}
	if err := f.cfg.Store.PutRemote(store.Remote{URL: key, ImageID: stored.ID, DownloadedAt: f.now()}); err != nil {
		return "", err
	}
	return stored.ID, nil
}

// storeRemoteImage downloads the layers the store lacks, then stores the
// image as a layered image.
func (f *Fetcher) storeRemoteImage(ctx context.Context, img v1.Image, info oci.Info, signer string) (store.Image, error) {
	return f.storeLayered(ctx, img, info, signer, func(d v1.Descriptor, i, n int) (string, error) {
		return f.downloadLayer(ctx, img, d, i, n)
	})
}

// layerAttempts is how many times a layer download that broke off is
// started again.
const layerAttempts = 3

// downloadLayer stores one layer blob, checked against its digest. A
// download the registry or the network broke off in the middle is
// restarted from the beginning (nothing of it was stored), up to
// layerAttempts times in all.
func (f *Fetcher) downloadLayer(ctx context.Context, img v1.Image, d v1.Descriptor, i, n int) (string, error) {
	var err error
	for attempt := 1; attempt <= layerAttempts; attempt++ {
		var p string
		p, err = f.downloadLayerOnce(ctx, img, d, i, n)
		if err == nil || !brokenOff(ctx, err) {
			return p, err
		}
		f.log.Warn("layer download broke off, starting it again", "layer", d.Digest.String(), "attempt", attempt, "err", err)
	}
	return "", err
}

// brokenOff tells a transfer cut short (a connection reset or closed
// early) from a refusal, a bad digest, a stall or a cancelled fetch.
func brokenOff(ctx context.Context, err error) bool {
	if ctx.Err() != nil || errors.Is(err, errdefs.ErrInvalid) || errors.Is(err, errdefs.ErrUntrusted) ||
		errors.Is(err, errdefs.ErrNotFound) || errors.Is(err, os.ErrDeadlineExceeded) {
		return false
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || strings.Contains(err.Error(), "connection reset") ||
		strings.Contains(err.Error(), "unexpected EOF")
}

func (f *Fetcher) downloadLayerOnce(ctx context.Context, img v1.Image, d v1.Descriptor, i, n int) (string, error) {
	l, err := img.LayerByDigest(d.Digest)
	if err != nil {
		return "", registryError(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", d.Digest, registryError(err))
	}
	defer rc.Close()
	var src io.Reader = contextReader{ctx, rc}
	if p := f.progress(fmt.Sprintf("Layer %d/%d %s", i+1, n, d.Digest.Hex[:12]), d.Size); p != nil {
		src = io.TeeReader(src, p)
		defer p.Done()
	}
	limit := d.Size
	if limit <= 0 {
		limit = f.cfg.Store.MaxImageSize()
	}
	p, err := f.cfg.Store.PutLayer(d.Digest.String(), src, limit)
	if err != nil {
		return "", registryError(err)
	}
	return p, nil
}

// registryError classifies what go-containerregistry returns: a registry
// saying "not found" or "denied" is ErrNotFound or ErrUntrusted, a digest
// mismatch ErrInvalid.
func registryError(err error) error {
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return fmt.Errorf("the registry speaks plain HTTP, allowed only with --insecure-options=http: %w", errdefs.ErrUntrusted)
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%w (credentials go in auth.d as dockerAuth or in Docker's config.json): %w", err, errdefs.ErrUntrusted)
		}
	}
	return err
}

// remoteOptions are go-containerregistry's options for one registry:
// orbit's TLS settings, its scheme policy, credentials, the host platform.
func (f *Fetcher) remoteOptions(ctx context.Context, reg name.Registry) ([]remote.Option, error) {
	base := f.client.Transport.(*http.Transport).Clone()
	base.TLSClientConfig = base.TLSClientConfig.Clone()
	scheme := "https"
	if f.cfg.Insecure.Has(insecure.HTTP) && !probeTLS(ctx, base, reg.RegistryStr()) {
		scheme = "http"
	}
	stall := f.cfg.StallTimeout
	if stall <= 0 {
		stall = DefaultStallTimeout
	}
	rt := &registryTransport{base: base, host: reg.RegistryStr(), scheme: scheme, allowHTTP: f.cfg.Insecure.Has(insecure.HTTP), stall: stall}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(rt),
		remote.WithAuthFromKeychain(authn.NewMultiKeychain(f.dockerAuth, authn.DefaultKeychain)),
		remote.WithPlatform(hostPlatform()),
		remote.WithUserAgent("orbit"),
	}, nil
}

// probeTLS tells whether a registry answers HTTPS, for
// --insecure-options=http, which allows plain HTTP but prefers HTTPS.
func probeTLS(ctx context.Context, base *http.Transport, host string) bool {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/v2/", nil)
	if err != nil {
		return false
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// registryTransport puts orbit's policy on requests go-containerregistry
// makes: the registry is spoken to over the scheme orbit chose (the
// library would use plain HTTP for any loopback or private address), any
// other plain-HTTP location (a redirect to blob storage) needs
// --insecure-options=http, and a response that stops sending for the
// stall timeout is abandoned.
type registryTransport struct {
	base      http.RoundTripper
	host      string
	scheme    string
	allowHTTP bool
	stall     time.Duration
}

func (t *registryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Host == t.host && req.URL.Scheme != t.scheme {
		req = req.Clone(req.Context())
		req.URL.Scheme = t.scheme
	}
	if req.URL.Scheme != "https" && !t.allowHTTP {
		return nil, fmt.Errorf("refusing plain HTTP to %s (allow it with --insecure-options=http): %w", req.URL.Host, errdefs.ErrUntrusted)
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = newStallBody(resp.Body, t.stall, req.URL.Host)
	return resp, nil
}

// stallBody fails a read once nothing arrived for the timeout.
type stallBody struct {
	rc      io.ReadCloser
	timeout time.Duration
	host    string
	timer   *time.Timer
	mu      sync.Mutex
	stalled bool
}

func newStallBody(rc io.ReadCloser, timeout time.Duration, host string) *stallBody {
	b := &stallBody{rc: rc, timeout: timeout, host: host}
	b.timer = time.AfterFunc(timeout, func() {
		b.mu.Lock()
		b.stalled = true
		b.mu.Unlock()
		rc.Close()
	})
	return b
}

func (b *stallBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.mu.Lock()
	stalled := b.stalled
	b.mu.Unlock()
	if stalled {
		return n, fmt.Errorf("%s sent nothing for %s: %w", b.host, b.timeout, os.ErrDeadlineExceeded)
	}
	if n > 0 {
		b.timer.Reset(b.timeout)
	}
	return n, err
}

func (b *stallBody) Close() error {
	b.timer.Stop()
	return b.rc.Close()
}
