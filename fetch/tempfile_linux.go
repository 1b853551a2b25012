package fetch

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/orbit-containers/orbit/internal/flock"
)

// tempFile creates a download file in the store's tmp directory, locked
// exclusively while it is open so `orbit image gc` leaves it alone. The
// cleanup closes and removes it: nothing of a download is ever visible in
// the store until Import has checked and placed it.
func (f *Fetcher) tempFile() (*os.File, func(), error) {
	dir := f.cfg.TempDir
	if dir == "" && f.cfg.Store != nil {
		dir = filepath.Join(f.cfg.Store.Dir(), "tmp")
	}
	if dir == "" {
		dir = os.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("creating download directory: %w", err)
	}
	file, err := os.CreateTemp(dir, "fetch-*.aci")
	if err != nil {
		return nil, nil, fmt.Errorf("creating download file: %w", err)
	}
	lock := flock.FromFile(file)
	if err := lock.TryLock(flock.Exclusive); err != nil {
		os.Remove(file.Name())
		lock.Close()
		return nil, nil, fmt.Errorf("locking download file: %w", err)
	}
	cleanup := func() {
		os.Remove(file.Name())
		lock.Close()
	}
	return file, cleanup, nil
}
