// Package atomicfile writes small files so that readers see either the old
// content or the new, never a part, and the new content survives a crash:
// a temp file in the same directory, fsync, rename, fsync of the directory.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// Write replaces path with data, with the given mode.
func Write(path string, data []byte, mode os.FileMode) error {
	return Create(path, mode, true, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// SyncDir makes a directory's entries (a rename into it) durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Create writes path from fill the same way as Write, for content that is
// streamed rather than held in memory. Unless overwrite is set, an existing
// path is left alone and ErrAlreadyExists returned (checked again at the
// rename, so a file that appears meanwhile is not replaced either). If
// fill fails, nothing is left behind.
func Create(path string, mode os.FileMode, overwrite bool, fill func(io.Writer) error) error {
	if !overwrite {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%s: %w (use --overwrite to replace it)", path, errdefs.ErrAlreadyExists)
		}
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op once renamed
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if overwrite {
		err = os.Rename(tmp, path)
	} else if err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE); errors.Is(err, unix.EEXIST) {
		err = fmt.Errorf("%s: %w (use --overwrite to replace it)", path, errdefs.ErrAlreadyExists)
	} else if err != nil {
		err = &os.LinkError{Op: "rename", Old: tmp, New: path, Err: err}
	}
	if err != nil {
		return err
	}
	return SyncDir(dir)
}
