package supervisor

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// writeStatus records an app's end in dir: <name>.json first, then <name>,
// the decimal status rkt's readers look for, so that a reader that finds the
// latter finds the former too. Both carry the exit time as mtime.
func writeStatus(dir, name string, st Status) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(dir, name+".json", append(b, '\n'), st.ExitedAt); err != nil {
		return err
	}
	return writeFileAtomic(dir, name, []byte(strconv.Itoa(st.ExitCode)), st.ExitedAt)
}

// writeFileAtomic writes dir/name durably: temp file in dir, fsync, mtime,
// rename, fsync of dir.
func writeFileAtomic(dir, name string, data []byte, mtime time.Time) (err error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing status %s: %w", name, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && !mtime.IsZero() {
		err = os.Chtimes(tmp, mtime, mtime)
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, name))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("writing status %s: %w", name, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
