// Package fetch finds images and brings them into the store: from the
// store itself, a local file, an http(s) URL or, by appc meta discovery,
// an image name. Every image, and every dependency of it, is checked
// against the trust store (package verify) before Import makes it visible,
// unless --insecure-options=image says otherwise.
package fetch

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/appc/spec/discovery"
	"github.com/appc/spec/schema/types"
	"golang.org/x/term"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/insecure"
	"github.com/orbit-containers/orbit/store"
	"github.com/orbit-containers/orbit/verify"
)

// PullPolicy says when to go to the network for an image, as rkt's
// --pull-policy does.
type PullPolicy int

const (
	// PullNew uses a stored image when there is one and fetches otherwise.
	PullNew PullPolicy = iota
	// PullNever uses only the store.
	PullNever
	// PullUpdate asks the remote for a newer image (honouring its HTTP
	// caching headers) even when one is stored.
	PullUpdate
)

// ParsePullPolicy reads "never", "new" or "update".
func ParsePullPolicy(s string) (PullPolicy, error) {
	switch s {
	case "new", "":
		return PullNew, nil
	case "never":
		return PullNever, nil
	case "update":
		return PullUpdate, nil
	}
	return 0, fmt.Errorf("pull policy %q: want never, new or update: %w", s, errdefs.ErrInvalid)
}

func (p PullPolicy) String() string {
	switch p {
	case PullNever:
		return "never"
	case PullUpdate:
		return "update"
	}
	return "new"
}

// Config is everything a Fetcher needs; the CLI builds it from its flags.
type Config struct {
	Store    *store.Store
	Insecure insecure.Options
	// TrustKeysFromHTTPS trusts, on first use, the keys that discovery
	// offers over verified HTTPS for a name that has no trusted key yet.
	TrustKeysFromHTTPS bool
	// LocalConfig, SystemConfig and UserConfig are rkt's configuration
	// directories: trustedkeys/ is read from the first two, auth.d/ from
	// all three (user overriding local overriding system).
	LocalConfig, SystemConfig, UserConfig string
	// Stderr receives download progress, only when it is a terminal.
	Stderr io.Writer
	Log    *slog.Logger
	// TempDir holds downloads until they are imported; the store's tmp
	// directory if empty.
	TempDir string
	// RootCAs are the CAs HTTPS servers are checked against; nil means the
	// system's, to which a user adds CAs with SSL_CERT_FILE or
	// SSL_CERT_DIR (Go's TLS reads both).
	RootCAs *x509.CertPool
	// Now is the clock for caching and key checks; time.Now if nil.
	Now func() time.Time
	// StallTimeout abandons a registry response that sends nothing for
	// this long; DefaultStallTimeout if zero.
	StallTimeout time.Duration
	// ContainersRegistriesDir is the containers tools' registries.d,
	// read before orbit's own; ContainersRegistriesDir if empty.
	ContainersRegistriesDir string
}

// Fetcher fetches and verifies images. It holds no state between calls
// but its HTTP connections.
type Fetcher struct {
	cfg    Config
	log    *slog.Logger
	client *http.Client
	auth   Auth
	// dockerAuth holds auth.d's dockerAuth credentials for registries.
	dockerAuth DockerAuth
	keystore   *verify.Keystore
	terminal   bool
}

// New returns a Fetcher. It reads the auth.d configuration now, so a
// malformed file is reported before anything is fetched.
func New(cfg Config) (*Fetcher, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	auth, err := LoadAuth(cfg.SystemConfig, cfg.LocalConfig, cfg.UserConfig)
	if err != nil {
		return nil, err
	}
	dockerAuth, err := LoadDockerAuth(cfg.SystemConfig, cfg.LocalConfig, cfg.UserConfig)
	if err != nil {
		return nil, err
	}
	ks := verify.NewKeystore(cfg.LocalConfig, cfg.SystemConfig)
	ks.Log = log
	ks.Now = cfg.Now
	f := &Fetcher{
		cfg:        cfg,
		log:        log,
		client:     newClient(cfg.Insecure, cfg.RootCAs),
		auth:       auth,
		dockerAuth: dockerAuth,
		keystore:   ks,
	}
	if file, ok := cfg.Stderr.(*os.File); ok && term.IsTerminal(int(file.Fd())) {
		f.terminal = true
	}
	return f, nil
}

func (f *Fetcher) now() time.Time {
	if f.cfg.Now != nil {
		return f.cfg.Now()
	}
	return time.Now()
}

// progress returns a progress bar for a download, or nil when stderr is
// not a terminal.
func (f *Fetcher) progress(label string, total int64) *progressBar {
	if !f.terminal {
		return nil
	}
	return newProgressBar(f.cfg.Stderr, label, total, f.now)
}

// refKind is what an image reference given by a user is.
type refKind int

const (
	refID refKind = iota
	refFile
	refURL
	refName
)

// classify tells an image reference's kind, in rkt's order: an image ID,
// a URL, a local file, else an appc name.
func classify(ref string) refKind {
	if store.LooksLikeID(ref) {
		return refID
	}
	if u, err := url.Parse(ref); err == nil && u.Scheme != "" && strings.Contains(ref, "://") {
		if u.Scheme == "file" {
			return refFile
		}
		return refURL
	}
	if filepath.IsAbs(ref) || strings.HasPrefix(ref, "./") || strings.HasPrefix(ref, "../") ||
		strings.HasSuffix(ref, ".aci") {
		return refFile
	}
	if _, err := os.Stat(ref); err == nil {
		return refFile
	}
	return refName
}

// Fetch resolves ref to a stored image ID, fetching and verifying as
// needed, dependencies included. ref is an image ID or prefix, a local
// file, an http(s) URL, or an appc name with optional ":version" and
// ",label=value" suffixes. sig, when set, is where the signature is (a
// file or URL) instead of the default beside the image.
func (f *Fetcher) Fetch(ctx context.Context, ref string, policy PullPolicy, sig string) (string, error) {
	if f.cfg.Store == nil {
		return "", fmt.Errorf("fetch: no image store: %w", errdefs.ErrInvalid)
	}
	if r, ok, err := parseOCIRef(ref); ok {
		if err != nil {
			return "", err
		}
		return f.fetchOCI(ctx, r, policy)
	}
	switch classify(ref) {
	case refID:
		img, err := f.cfg.Store.Get(ref)
		if err != nil {
			return "", err
		}
		return img.ID, nil
	case refFile:
		p := ref
		if u, err := url.Parse(ref); err == nil && u.Scheme == "file" {
			p = u.Path
		}
		return f.fetchFile(ctx, p, sig)
	case refURL:
		u, err := url.Parse(ref)
		if err != nil {
			return "", fmt.Errorf("image URL %q: %w: %w", ref, err, errdefs.ErrInvalid)
		}
		if err := checkScheme(u, true, f.cfg.Insecure); err != nil {
			return "", err
		}
		img, err := f.fetchURL(ctx, u, sig, policy, want{latest: true, explicit: true}, newChain())
		if err != nil {
			return "", err
		}
		return img.ID, nil
	}
	app, err := discovery.NewAppFromString(ref)
	if err != nil {
		return "", fmt.Errorf("image %q is not an image ID, file, URL or valid image name: %w: %w", ref, err, errdefs.ErrInvalid)
	}
	img, err := f.fetchName(ctx, app, policy, sig, newChain())
	if err != nil {
		return "", err
	}
	return img.ID, nil
}

// fetchFile imports a local image file, verified against the signature
// given or the .asc file beside it.
func (f *Fetcher) fetchFile(ctx context.Context, p, sig string) (string, error) {
	file, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("image file %s: %w", p, errdefs.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("image file %s: %w", p, err)
	}
	defer file.Close()
	if info, err := file.Stat(); err != nil || !info.Mode().IsRegular() {
		return "", fmt.Errorf("image file %s: not a regular file: %w", p, errdefs.ErrInvalid)
	}
	var signature []byte
	where := sig
	if !f.cfg.Insecure.Has(insecure.Image) {
		if where == "" {
			where = p + ".asc"
		}
		signature, err = f.readSignature(ctx, where, sig == "", true)
		if err != nil {
			return "", err
		}
	}
	img, err := f.admit(ctx, file, signature, where, p, want{latest: true}, newChain())
	if err != nil {
		return "", err
	}
	return img.ID, nil
}

// readSignature reads a signature from a file or URL. A missing one is
// not an error (nil, nil) when optional: admit then reports it. explicit
// says the user named the location (or the image it lies beside): it
// allows plain HTTP, and a local file. Any other location (one a
// discovery page offered) must be an http(s) URL: a remote page never
// makes orbit open a file, device or FIFO on this machine.
func (f *Fetcher) readSignature(ctx context.Context, where string, optional, explicit bool) ([]byte, error) {
	if u, err := url.Parse(where); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		if err := checkScheme(u, explicit, f.cfg.Insecure); err != nil {
			return nil, err
		}
		data, err := f.getSmall(ctx, u, verify.MaxSignatureSize)
		if errors.Is(err, errdefs.ErrNotFound) && optional {
			return nil, nil
		}
		return data, err
	}
	if !explicit {
		return nil, fmt.Errorf("signature location %q is not an http(s) URL: %w", where, errdefs.ErrUntrusted)
	}
	file, err := os.Open(where)
	if errors.Is(err, os.ErrNotExist) {
		if optional {
			return nil, nil
		}
		return nil, fmt.Errorf("signature %s: %w", where, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("signature %s: %w", where, err)
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, verify.MaxSignatureSize+1))
	if err != nil {
		return nil, fmt.Errorf("signature %s: %w", where, err)
	}
	if len(data) > verify.MaxSignatureSize {
		return nil, fmt.Errorf("signature %s: larger than %d bytes: %w", where, verify.MaxSignatureSize, errdefs.ErrInvalid)
	}
	return data, nil
}

// appcOSArch is this machine's os and arch as appc names them.
func appcOSArch() (string, string) {
	os, arch, err := types.ToAppcOSArch(runtime.GOOS, runtime.GOARCH, "")
	if err != nil {
		return runtime.GOOS, runtime.GOARCH
	}
	return os, arch
}
