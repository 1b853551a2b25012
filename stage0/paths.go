package stage0

import (
	"errors"
	"io/fs"
	"path/filepath"
)

// RealPath is path made absolute with its symlinks resolved as far as it
// exists; the part that does not exist yet is appended as given. The
// kernel names mount points by such paths, and a pod's stage1 runs from
// inside the pod directory, so orbit's directories are compared and handed
// on only in this form.
func RealPath(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	rest := ""
	for cur := abs; ; {
		resolved, err := filepath.EvalSymlinks(cur)
		if err == nil {
			return filepath.Join(resolved, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}
