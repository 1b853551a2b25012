package stage0

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// LogFiles lists the files that keep output of the pod, or of its app
// app when app is not "": the log files an app was added with (app add
// --log, --stdout, --stderr), or the output of a sandbox started in the
// background. Everything else a pod writes goes where its orbit command's
// output went (a terminal, or a unit's journal), which orbit does not keep.
func (p *Pod) LogFiles(app string) ([]string, error) {
	if app == "" {
		path := p.File(OutputFile)
		if _, err := os.Stat(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("pod %s keeps no log of its own: its output went where its orbit command wrote (a terminal, or a unit's journal: journalctl -u UNIT); apps added with a log file have one (--app): %w", p.UUID, errdefs.ErrNotFound)
			}
			return nil, err
		}
		return []string{path}, nil
	}
	pm, err := p.Manifest()
	if err != nil {
		return nil, err
	}
	name, err := types.NewACName(app)
	if err != nil {
		return nil, fmt.Errorf("app %q: %w: %w", app, err, errdefs.ErrInvalid)
	}
	ra := pm.Apps.Get(*name)
	if ra == nil {
		return nil, fmt.Errorf("pod %s has no app %q: %w", p.UUID, app, errdefs.ErrNotFound)
	}
	var files []string
	for _, ann := range []string{contract.AnnotationAppStdout, contract.AnnotationAppStderr} {
		if path, ok := ra.Annotations.Get(ann); ok && path != "" && (len(files) == 0 || files[0] != path) {
			files = append(files, path)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("app %s of pod %s keeps no log file: give one with 'orbit app add --log=FILE'; its output went to the pod's: %w", app, p.UUID, errdefs.ErrNotFound)
	}
	return files, nil
}
