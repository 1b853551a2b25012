package supervisor

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/orbit-containers/orbit/internal/atomicfile"
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

// writeFileAtomic writes dir/name durably, with mtime as its modification
// time from the moment it appears.
func writeFileAtomic(dir, name string, data []byte, mtime time.Time) error {
	if err := atomicfile.ReplaceModTime(filepath.Join(dir, name), data, 0o644, mtime); err != nil {
		return fmt.Errorf("writing status %s: %w", name, err)
	}
	return nil
}
