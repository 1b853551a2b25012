package fetch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/insecure"
	"github.com/orbit-containers/orbit/store"
)

// maxRedirects bounds a chain of redirects.
const maxRedirects = 10

// newClient builds the one HTTP client a Fetcher uses for discovery,
// images, signatures and keys. Root CAs are the system's, which Go reads
// from SSL_CERT_FILE and SSL_CERT_DIR when they are set.
func newClient(opts insecure.Options, roots *x509.CertPool) *http.Client {
	t := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          10,
		TLSClientConfig: &tls.Config{
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: opts.Has(insecure.TLS),
			RootCAs:            roots,
		},
	}
	return &http.Client{
		Transport: t,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= maxRedirects {
				return fmt.Errorf("stopped after %d redirects", maxRedirects)
			}
			if req.URL.Scheme != "https" && via[0].URL.Scheme == "https" && !opts.Has(insecure.HTTP) {
				return fmt.Errorf("refusing redirect from %s to plain HTTP %s (allow it with --insecure-options=http)", via[0].URL.Redacted(), req.URL.Redacted())
			}
			return nil
		},
	}
}

// checkScheme allows https always and http when it was named explicitly
// (a URL the user typed) or allowed by --insecure-options=http.
func checkScheme(u *url.URL, explicit bool, opts insecure.Options) error {
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if explicit || opts.Has(insecure.HTTP) {
			return nil
		}
		return fmt.Errorf("%s: plain HTTP is not allowed (allow it with --insecure-options=http): %w", u.Redacted(), errdefs.ErrUntrusted)
	}
	return fmt.Errorf("%s: unsupported URL scheme %q: %w", u.Redacted(), u.Scheme, errdefs.ErrInvalid)
}

// get sends a GET for u with the configured credentials and extra headers.
// The caller closes the body.
func (f *Fetcher) get(ctx context.Context, u *url.URL, header http.Header) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", u.Redacted(), err, errdefs.ErrInvalid)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "orbit")
	f.auth.apply(req, f.cfg.Insecure.Has(insecure.HTTP))
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, describeHTTPError(u, err)
	}
	return resp, nil
}

// describeHTTPError adds what to do to a failed request: a certificate
// problem names the options a user has.
func describeHTTPError(u *url.URL, err error) error {
	var certErr *tls.CertificateVerificationError
	var hostErr x509.HostnameError
	var authErr x509.UnknownAuthorityError
	if errors.As(err, &certErr) || errors.As(err, &hostErr) || errors.As(err, &authErr) {
		return fmt.Errorf("fetching %s: TLS certificate not trusted: %v (add the CA with SSL_CERT_FILE or SSL_CERT_DIR, or skip the check with --insecure-options=tls): %w", u.Redacted(), err, errdefs.ErrUntrusted)
	}
	return fmt.Errorf("fetching %s: %w", u.Redacted(), err)
}

// statusError describes a response that is not what was hoped for.
func statusError(u *url.URL, resp *http.Response) error {
	class := errdefs.ErrInvalid
	switch resp.StatusCode {
	case http.StatusNotFound, http.StatusGone:
		class = errdefs.ErrNotFound
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("fetching %s: %s (check the credentials in auth.d): %w", u.Redacted(), resp.Status, errdefs.ErrUntrusted)
	}
	return fmt.Errorf("fetching %s: %s: %w", u.Redacted(), resp.Status, class)
}

// getSmall fetches a small document (a signature, a key, a discovery
// page), at most limit bytes.
func (f *Fetcher) getSmall(ctx context.Context, u *url.URL, limit int64) ([]byte, error) {
	resp, err := f.get(ctx, u, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(u, resp)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", u.Redacted(), err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("fetching %s: response larger than %d bytes: %w", u.Redacted(), limit, errdefs.ErrInvalid)
	}
	return data, nil
}

// cacheInfo is what a response says about caching it.
type cacheInfo struct {
	ETag   string
	MaxAge time.Duration
}

func parseCacheInfo(h http.Header) cacheInfo {
	ci := cacheInfo{ETag: h.Get("ETag")}
	noCache := false
	for _, part := range strings.Split(h.Get("Cache-Control"), ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch strings.ToLower(k) {
		case "max-age":
			if n, err := strconv.ParseInt(strings.Trim(v, `"`), 10, 64); err == nil && n > 0 {
				ci.MaxAge = time.Duration(min(n, int64(365*24*3600))) * time.Second
			}
		case "no-cache", "no-store":
			noCache = true
		}
	}
	if noCache {
		ci.MaxAge = 0
	}
	return ci
}

// download is the outcome of downloadImage: either NotModified, or the
// image's bytes as served in File (positioned at its start).
type download struct {
	NotModified bool
	File        *os.File
	Cache       cacheInfo
	// Resumed says the bytes were put together from an earlier, cut
	// download and the rest of it: if they do not make a valid image, the
	// image is downloaded again whole.
	Resumed bool
	cleanup func()
}

// Close removes the downloaded file; closing again does nothing.
func (d *download) Close() {
	if d.cleanup != nil {
		d.cleanup()
		d.cleanup = nil
	}
}

// maxDownload bounds the bytes of one image download: the store's limit
// on an image's uncompressed size, with room for a compressed image of
// incompressible files to be a little larger than its contents.
func (f *Fetcher) maxDownload() int64 {
	limit := f.maxImageSize()
	return limit + limit/64 + 1<<20
}

func (f *Fetcher) maxImageSize() int64 {
	if f.cfg.Store == nil {
		return store.DefaultMaxImageSize
	}
	return f.cfg.Store.MaxImageSize()
}

// downloadImage GETs an image into a file, asking the server whether it
// changed since etag when etag is set. A download is kept in the store when
// it is cut short, and the next downloadImage of the URL asks only for the
// rest (see resumeImage).
func (f *Fetcher) downloadImage(ctx context.Context, u *url.URL, etag string) (*download, error) {
	if etag == "" {
		if p := f.openPartial(u); p != nil {
			return f.resumeImage(ctx, u, p)
		}
	}
	h := http.Header{}
	if etag != "" {
		h.Set("If-None-Match", etag)
	}
	resp, err := f.get(ctx, u, h)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	ci := parseCacheInfo(resp.Header)
	if resp.StatusCode == http.StatusNotModified && etag != "" {
		if ci.ETag == "" {
			ci.ETag = etag
		}
		return &download{NotModified: true, Cache: ci}, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, statusError(u, resp)
	}
	file, cleanup, err := f.tempFile()
	if err != nil {
		return nil, err
	}
	if err := f.receive(u, resp, file, 0, resp.ContentLength, -1); err != nil {
		cleanup()
		return nil, err
	}
	return &download{File: file, Cache: ci, cleanup: cleanup}, nil
}

// resumeImage downloads u into the kept download p, asking for the bytes
// after those it holds (Range, with If-Range when the server gave a
// validator). A 206 whose Content-Range starts where p ends is appended; a
// 200 (the image changed, or the server ignores ranges) starts p over; a
// 206 for another range, or 416, empties p and asks for the whole image.
// Cut short again, p keeps what it got for the next try.
func (f *Fetcher) resumeImage(ctx context.Context, u *url.URL, p *partial) (*download, error) {
	done := false
	defer func() {
		if !done {
			p.release()
		}
	}()
	for attempt := 0; ; attempt++ {
		offset := p.size
		h := http.Header{}
		if offset > 0 {
			h.Set("Range", fmt.Sprintf("bytes=%d-", offset))
			if v := p.meta.validator(); v != "" {
				h.Set("If-Range", v)
			}
		}
		resp, err := f.get(ctx, u, h)
		if err != nil {
			return nil, err
		}
		total, span := resp.ContentLength, int64(-1)
		switch {
		case resp.StatusCode == http.StatusOK:
			if offset > 0 {
				f.log.Debug("the server sent the whole image; the kept download is discarded", "url", u.Redacted())
				p.reset()
				offset = 0
			}
			if err := p.start(resp.Header, f.now()); err != nil {
				resp.Body.Close()
				return nil, err
			}
		case resp.StatusCode == http.StatusPartialContent && offset > 0:
			first, last, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
			etag := resp.Header.Get("ETag")
			changed := etag != "" && p.meta.ETag != "" && etag != p.meta.ETag
			if !ok || first != offset || changed || (resp.ContentLength >= 0 && resp.ContentLength != last-first+1) {
				resp.Body.Close()
				if attempt > 0 {
					return nil, fmt.Errorf("downloading %s: the server answered a request for the whole image with a part of it (%s): %w", u.Redacted(), resp.Header.Get("Content-Range"), errdefs.ErrInvalid)
				}
				f.log.Debug("the server sent another part than asked for, or of another image; downloading it whole", "url", u.Redacted(), "content-range", resp.Header.Get("Content-Range"))
				p.reset()
				continue
			}
			f.log.Debug("resuming a cut download", "url", u.Redacted(), "from", offset)
			total, span = size, last-first+1
		case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && offset > 0 && attempt == 0:
			resp.Body.Close()
			p.reset()
			continue
		default:
			defer resp.Body.Close()
			return nil, statusError(u, resp)
		}
		err = f.receive(u, resp, p.file, offset, total, span)
		resp.Body.Close()
		if err != nil {
			if fi, serr := p.file.Stat(); serr == nil {
				p.size = fi.Size()
			}
			if errors.Is(err, errdefs.ErrInvalid) {
				p.reset() // more bytes than announced: nothing to resume
			}
			return nil, err
		}
		done = true
		return &download{File: p.file, Cache: parseCacheInfo(resp.Header), Resumed: offset > 0, cleanup: p.remove}, nil
	}
}

// receive writes resp's body into file from offset on, expecting the file
// to be total bytes long in the end (when total >= 0) and the body to be
// at most span bytes (when span >= 0, the length a Content-Range gave),
// and leaves the file at its start. Whatever the server announces, no
// more than maxDownload bytes in all are written: a body that goes on
// (an endless one, or a Content-Range that lies) is cut there and is
// ErrInvalid.
func (f *Fetcher) receive(u *url.URL, resp *http.Response, file *os.File, offset, total, span int64) error {
	maxSize := f.maxDownload()
	tooLarge := func() error {
		return fmt.Errorf("downloading %s: larger than the image size limit of %s: %w", u.Redacted(), store.FormatSize(f.maxImageSize()), errdefs.ErrInvalid)
	}
	if total > maxSize || offset > maxSize {
		return tooLarge()
	}
	limit := maxSize
	if total >= 0 {
		limit = total
	}
	if span >= 0 {
		limit = min(limit, offset+span)
	}
	if err := file.Truncate(offset); err != nil {
		return err
	}
	if _, err := file.Seek(offset, io.SeekStart); err != nil {
		return err
	}
	var w io.Writer = file
	if p := f.progress("Downloading "+u.Redacted(), total); p != nil {
		defer p.Done()
		p.done = offset // a resumed download counts from its start
		w = io.MultiWriter(file, p)
	}
	n, err := io.Copy(w, io.LimitReader(resp.Body, limit-offset+1))
	if err != nil {
		return fmt.Errorf("downloading %s: %w", u.Redacted(), err)
	}
	if offset+n > limit {
		file.Truncate(offset)
		if limit == maxSize {
			return tooLarge()
		}
		return fmt.Errorf("downloading %s: the server sent more bytes than it announced: %w", u.Redacted(), errdefs.ErrInvalid)
	}
	if total >= 0 && offset+n != total {
		return fmt.Errorf("downloading %s: got %d of %d bytes: %w", u.Redacted(), offset+n, total, errdefs.ErrInvalid)
	}
	_, err = file.Seek(0, io.SeekStart)
	return err
}
