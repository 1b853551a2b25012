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

// PartialDir holds interrupted downloads (see PartialDataExt).
func (s *Store) PartialDir() string { return filepath.Join(s.dir, "partial") }

// gcPartials removes the interrupted downloads no fetch holds that nobody
// touched lately, as gcTemp does temp files, and descriptions left
// without their download.
func (s *Store) gcPartials(rep *GCReport) error {
	entries, err := os.ReadDir(s.PartialDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || s.now().Sub(info.ModTime()) < s.tmpMinAge {
			continue
		}
		path := filepath.Join(s.PartialDir(), e.Name())
		if base, ok := strings.CutSuffix(e.Name(), PartialMetaExt); ok {
			if _, err := os.Lstat(filepath.Join(s.PartialDir(), base+PartialDataExt)); errors.Is(err, fs.ErrNotExist) {
				if err := os.Remove(path); err == nil {
					rep.TempRemoved = append(rep.TempRemoved, filepath.Join("partial", e.Name()))
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
		os.Remove(filepath.Join(s.PartialDir(), base+PartialMetaExt))
		if err := os.Remove(path); err != nil {
			errs = append(errs, err)
		} else {
			rep.TempRemoved = append(rep.TempRemoved, filepath.Join("partial", e.Name()))
		}
		l.Close()
	}
	return errors.Join(errs...)
}
