package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// PartialMaxAge bounds how long an interrupted download is kept for the
// next fetch of its URL to resume: an older one is downloaded again whole.
const PartialMaxAge = 24 * time.Hour

// Partial downloads are kept in PartialDir as a pair of files named by the
// hash of the URL: NAME.aci (the bytes received so far, locked by the
// fetch that writes it) and NAME.json (what the server said of them).
const (
	PartialDataExt = ".aci"
	PartialMetaExt = ".json"
)

// partialDirName is PartialDir's name in the store directory.
const partialDirName = "partial"

// PartialDir holds interrupted downloads (see PartialDataExt).
func (s *Store) PartialDir() string { return filepath.Join(s.dir, partialDirName) }

// gcPartials removes the interrupted downloads no fetch holds that nobody
// touched lately, as gcTemp does temp files, and descriptions left
// without their download.
func (s *Store) gcPartials(rep *GCReport) error {
	removed, err := removePartials(s.PartialDir(), s.tmpMinAge, s.now())
	rep.TempRemoved = append(rep.TempRemoved, removed...)
	return err
}

// ExpirePartials removes, from the store in dir, the interrupted downloads
// that no fetch would resume any more (untouched for PartialMaxAge) and
// no fetch holds, without opening the store's index: `orbit gc` runs it.
// It returns what it removed, relative to dir.
func ExpirePartials(dir string, now time.Time) ([]string, error) {
	return removePartials(filepath.Join(dir, partialDirName), PartialMaxAge, now)
}

func removePartials(dir string, minAge time.Duration, now time.Time) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || now.Sub(info.ModTime()) < minAge {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if base, ok := strings.CutSuffix(e.Name(), PartialMetaExt); ok {
			if _, err := os.Lstat(filepath.Join(dir, base+PartialDataExt)); errors.Is(err, fs.ErrNotExist) {
				if err := os.Remove(path); err == nil {
					removed = append(removed, filepath.Join(partialDirName, e.Name()))
				}
			}
			continue
		}
		base, ok := strings.CutSuffix(e.Name(), PartialDataExt)
		if !ok {
			continue
		}
		l, ok, err := lockExisting(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			continue
		}
		os.Remove(filepath.Join(dir, base+PartialMetaExt))
		if err := os.Remove(path); err != nil {
			errs = append(errs, err)
		} else {
			removed = append(removed, filepath.Join(partialDirName, e.Name()))
		}
		l.Close()
	}
	return removed, errors.Join(errs...)
}
