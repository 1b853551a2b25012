package fetch

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/flock"
	"github.com/orbit-containers/orbit/store"
)

// partialMeta is what a server said about a download that was cut short,
// kept beside its bytes: the next fetch of the URL asks for the rest only
// if the image is still the same (If-Range with the validator).
type partialMeta struct {
	// URLHash is the SHA-256 of the full URL, credentials and all, which
	// is also the files' name: a partial is only ever resumed for the URL
	// it came from.
	URLHash string `json:"urlHash"`
	// URL is the URL without credentials, for people.
	URL          string    `json:"url"`
	ETag         string    `json:"etag,omitempty"`
	LastModified string    `json:"lastModified,omitempty"`
	Started      time.Time `json:"started"`
}

// validator is the If-Range value: a strong ETag, else Last-Modified,
// else nothing (the rest is asked for unconditionally, and a mismatch is
// caught once the image is checked).
func (m partialMeta) validator() string {
	if m.ETag != "" && !strings.HasPrefix(m.ETag, "W/") {
		return m.ETag
	}
	return m.LastModified
}

// partial is a download kept across fetches in the store's partial
// directory, locked exclusively while a fetch writes it.
type partial struct {
	file     *os.File
	lock     *flock.Lock
	metaPath string
	meta     partialMeta
	size     int64
}

// openPartial opens (or starts) the kept download of u, or returns nil
// when there is nowhere to keep one or another fetch of the URL holds it.
// A kept download that cannot be resumed (its description is missing or
// for another URL, it is older than store.PartialMaxAge or larger than an
// image may be) is emptied.
func (f *Fetcher) openPartial(u *url.URL) *partial {
	if f.cfg.Store == nil {
		return nil
	}
	dir := f.cfg.Store.PartialDir()
	if err := ensurePrivateDir(dir); err != nil {
		f.log.Debug("not keeping downloads", "dir", dir, "err", err)
		return nil
	}
	sum := sha256.Sum256([]byte(u.String()))
	key := hex.EncodeToString(sum[:])
	file, err := openPartialFile(filepath.Join(dir, key+store.PartialDataExt))
	if err != nil {
		f.log.Debug("not resuming", "url", u.Redacted(), "err", err)
		return nil
	}
	lock := flock.FromFile(file)
	if err := lock.TryLock(flock.Exclusive); err != nil {
		lock.Close()
		return nil
	}
	// image gc may have removed the file between the open and the lock.
	if linked, err := lock.Linked(); err != nil || !linked {
		lock.Close()
		return nil
	}
	p := &partial{file: file, lock: lock, metaPath: filepath.Join(dir, key+store.PartialMetaExt)}
	info, err := file.Stat()
	if err != nil {
		p.release()
		return nil
	}
	p.size = info.Size()
	data, err := readSmallNoFollow(p.metaPath, 64<<10)
	if err == nil {
		err = json.Unmarshal(data, &p.meta)
	}
	switch {
	case p.size == 0:
	case err != nil:
		f.log.Debug("discarding a kept download without its description", "url", u.Redacted(), "err", err)
		p.reset()
	case p.meta.URLHash != key:
		f.log.Debug("discarding a kept download of another URL", "url", u.Redacted())
		p.reset()
	case f.now().Sub(info.ModTime()) > store.PartialMaxAge:
		f.log.Debug("discarding a kept download older than the limit", "url", u.Redacted(), "limit", store.PartialMaxAge)
		p.reset()
	case p.size > f.cfg.Store.MaxImageSize():
		f.log.Debug("discarding a kept download larger than an image may be", "url", u.Redacted())
		p.reset()
	}
	p.meta.URLHash, p.meta.URL = key, u.Redacted()
	return p
}

// start records the response a download from byte 0 is made of.
func (p *partial) start(h http.Header, now time.Time) error {
	p.meta.ETag, p.meta.LastModified, p.meta.Started = h.Get("ETag"), h.Get("Last-Modified"), now
	data, err := json.Marshal(p.meta)
	if err != nil {
		return err
	}
	return atomicfile.Write(p.metaPath, data, 0o600)
}

// reset empties the kept download.
func (p *partial) reset() {
	p.file.Truncate(0)
	p.size = 0
	os.Remove(p.metaPath)
	p.meta = partialMeta{URLHash: p.meta.URLHash, URL: p.meta.URL}
}

// release unlocks the kept download, leaving it for the next fetch.
func (p *partial) release() {
	p.lock.Close()
}

// remove deletes the kept download: it has been used up.
func (p *partial) remove() {
	os.Remove(p.metaPath)
	if err := os.Remove(p.file.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		p.file.Truncate(0)
	}
	p.lock.Close()
}

// parseContentRange reads "bytes FIRST-LAST/TOTAL" (TOTAL may be "*",
// given as -1).
func parseContentRange(s string) (first, last, total int64, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(s), "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	span, size, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	a, b, found := strings.Cut(span, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err1, err2, err3 error
	first, err1 = strconv.ParseInt(a, 10, 64)
	last, err2 = strconv.ParseInt(b, 10, 64)
	total = -1
	if size != "*" {
		total, err3 = strconv.ParseInt(size, 10, 64)
	}
	if err1 != nil || err2 != nil || err3 != nil || first < 0 || last < first || (total >= 0 && last >= total) {
		return 0, 0, 0, false
	}
	return first, last, total, true
}

// ensurePrivateDir makes dir, or checks the one there: a directory (not a
// link to one elsewhere) of root's only, as the store's own directory is.
func ensurePrivateDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s is not a directory of its own: %w", dir, errdefs.ErrInvalid)
	}
	if st.Mode&0o077 != 0 {
		return unix.Chmod(dir, 0o700)
	}
	return nil
}

// openPartialFile opens (creating it if need be) a kept download for
// writing, without following a symbolic link at its name: what is there
// and is not a regular file of one link (a link, a FIFO, a hard link to a
// file elsewhere, which truncating would empty) is removed and a new file
// made in its place.
func openPartialFile(path string) (*os.File, error) {
	for range 2 {
		file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0o600)
		if err == nil {
			var st unix.Stat_t
			if err = unix.Fstat(int(file.Fd()), &st); err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Nlink == 1 {
				return file, nil
			}
			file.Close()
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("%s: not a file of its own: %w", path, errdefs.ErrInvalid)
}

// readSmallNoFollow reads a file of at most limit bytes, refusing a
// symbolic link at its name.
func readSmallNoFollow(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes: %w", path, limit, errdefs.ErrInvalid)
	}
	return data, nil
}
