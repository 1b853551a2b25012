// Package pod reads and writes a pod directory from stage1's side of the
// stage1 contract (see Documentation/design.md): the pod manifest, the
// apps' rootfs and image manifests, the pid file and exit statuses, and
// the volumes each app mounts. Every flavour uses it.
package pod

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// Pod is a pod directory as stage1 sees it.
type Pod struct {
	Dir      string
	UUID     string
	Manifest *schema.PodManifest
}

// Load reads the pod in dir (stage1 runs with the pod directory as its
// working directory).
func Load(dir, uuid string) (*Pod, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(contract.PodManifest(abs))
	if err != nil {
		return nil, fmt.Errorf("reading the pod manifest: %w", err)
	}
	var pm schema.PodManifest
	if err := json.Unmarshal(data, &pm); err != nil {
		return nil, fmt.Errorf("pod manifest: %w: %w", err, errdefs.ErrInvalid)
	}
	return &Pod{Dir: abs, UUID: uuid, Manifest: &pm}, nil
}

// Stage1Rootfs is the stage1 root filesystem.
func (p *Pod) Stage1Rootfs() string { return contract.Stage1Rootfs(p.Dir) }

// AppRoot is where an app's root filesystem is, on the host.
func (p *Pod) AppRoot(app types.ACName) string {
	return contract.InStage1(p.Dir, contract.Stage1AppRootfs(app.String()))
}

// ImageManifest reads the manifest of an app's image.
func (p *Pod) ImageManifest(app types.ACName) (*schema.ImageManifest, error) {
	data, err := os.ReadFile(contract.AppImageManifest(p.Dir, app.String()))
	if err != nil {
		return nil, fmt.Errorf("app %s: reading its image manifest: %w", app, err)
	}
	var im schema.ImageManifest
	if err := json.Unmarshal(data, &im); err != nil {
		return nil, fmt.Errorf("app %s: image manifest: %w: %w", app, err, errdefs.ErrInvalid)
	}
	return &im, nil
}

// WritePid records the PID that the enter entrypoint is given.
func (p *Pod) WritePid(pid int) error {
	return atomicfile.Replace(contract.PidFile(p.Dir), []byte(strconv.Itoa(pid)), 0o644)
}

// StatusDir is where apps' exit statuses go.
func (p *Pod) StatusDir() string { return contract.InStage1(p.Dir, contract.Stage1StatusDir) }

// WriteStatus records an app's exit status.
func (p *Pod) WriteStatus(app types.ACName, code int) error {
	if err := os.MkdirAll(p.StatusDir(), 0o755); err != nil {
		return err
	}
	return atomicfile.Replace(contract.InStage1(p.Dir, contract.Stage1AppStatus(app.String())), []byte(strconv.Itoa(code)), 0o644)
}

// ProcessEnv reads a running process's environment, as enter entrypoints
// give it to the command they run.
func ProcessEnv(pid int) ([]string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return nil, fmt.Errorf("reading the app's environment: %w", err)
	}
	var env []string
	for _, kv := range bytes.Split(data, []byte{0}) {
		if len(kv) > 0 {
			env = append(env, string(kv))
		}
	}
	return env, nil
}
