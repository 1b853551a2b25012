// Package atomicfile writes files so that readers see either the old
// content or the new, never a part, and the new content survives a crash:
// a temp file in the same directory, fsync, rename, fsync of the directory.
//
// Replace and ReplaceModTime keep the first half of that promise only: the
// rename, without either fsync. They are for files that need not outlive
// the machine's uptime (a pod's files: see "What is durable" in
// Documentation/design.md), where a killed process must leave whole files
// but a power loss may leave a missing or empty one.
//
// SyncDir, the last of those steps, is here too for the other changes to a
// directory that must survive a crash (a rename or unlink done without
// Write): it is one system call's worth of the same discipline, not a
// helper of its own.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// Write replaces path with data, with the given mode.
func Write(path string, data []byte, mode os.FileMode) error {
	return WriteModTime(path, data, mode, time.Time{})
}

// WriteModTime is Write for a file whose modification time means
// something (when an app exited, say): the new file has mtime from the
// moment it appears. A zero mtime leaves the time of writing.
func WriteModTime(path string, data []byte, mode os.FileMode, mtime time.Time) error {
	return create(path, mode, true, true, mtime, writeAll(data))
}

// Replace replaces path with data, with the given mode, atomically but not
// durably: a reader, or a process that starts after the writer was killed,
// sees the old content or the new; after a power loss the file may be
// missing or empty. It costs no disk flush.
func Replace(path string, data []byte, mode os.FileMode) error {
	return ReplaceModTime(path, data, mode, time.Time{})
}

// ReplaceModTime is Replace with the modification time of WriteModTime.
func ReplaceModTime(path string, data []byte, mode os.FileMode, mtime time.Time) error {
	return create(path, mode, true, false, mtime, writeAll(data))
}

func writeAll(data []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}
}

// SyncDir makes the entries of dir (a rename into it, an unlink from it)
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// Create writes path from fill the same way as Write, for content that is
// streamed rather than held in memory. Unless overwrite is set, an existing
// path is left alone and ErrAlreadyExists returned (checked again at the
// rename, so a file that appears meanwhile is not replaced either). If
// fill fails, nothing is left behind.
func Create(path string, mode os.FileMode, overwrite bool, fill func(io.Writer) error) error {
	return create(path, mode, overwrite, true, time.Time{}, fill)
}

func create(path string, mode os.FileMode, overwrite, durable bool, mtime time.Time, fill func(io.Writer) error) error {
	if !overwrite {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("%s: %w", path, errdefs.ErrAlreadyExists)
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
	if durable {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if !mtime.IsZero() {
		if err := os.Chtimes(tmp, mtime, mtime); err != nil {
			return err
		}
	}
	if overwrite {
		err = os.Rename(tmp, path)
	} else if err = unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE); errors.Is(err, unix.EEXIST) {
		err = fmt.Errorf("%s: %w", path, errdefs.ErrAlreadyExists)
	} else if err != nil {
		err = &os.LinkError{Op: "rename", Old: tmp, New: path, Err: err}
	}
	if err != nil || !durable {
		return err
	}
	return SyncDir(dir)
}
