package stage0

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/network"
)

// AppStatus is what is known about one app of a pod.
type AppStatus struct {
	Name    string
	ImageID string
	// ExitCode is nil while the app has not exited (or never ran).
	ExitCode *int
	// ExitedAt is when the exit status was written.
	ExitedAt time.Time
	// OOMKilled is set when stage1 recorded that the app ran out of memory.
	OOMKilled bool
	// State is the app's own state (contract.AppCreated, AppRunning or
	// AppExited) in a sandbox, whose apps start and stop on their own; ""
	// in other pods, whose apps share the pod's state.
	State string
	// ImageName is the app's image name and version label, as rkt shows
	// it ("example.com/app:1.0"); "" when the pod manifest names none.
	ImageName string
}

// Status is a pod's state and its apps' as read from disk now.
type Status struct {
	UUID      string
	State     State
	CreatedAt time.Time
	StartedAt time.Time
	// GCMarkedAt is when gc marked the pod (zero if not marked).
	GCMarkedAt time.Time
	// Pid is the pod's PID 1 as stage1 reported it (0 when unknown).
	Pid  int
	Apps []AppStatus
	// Manifest is the pod manifest; nil when the status was read from the
	// pod's summary (ReadStatuses).
	Manifest *schema.PodManifest
	// Networks are the networks stage1 joined the pod to (rkt's
	// net-info.json); none for a pod in the host's network.
	Networks []network.NetInfo
	// KVM is what a kvm pod's VM boots (kernel and accelerator), as its
	// run entrypoint recorded it; nil for other pods and before it runs.
	KVM *contract.KVMBoot
}

// Manifest reads the pod manifest.
func (p *Pod) Manifest() (*schema.PodManifest, error) {
	data, err := os.ReadFile(contract.PodManifest(p.Path()))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("pod %s has no pod manifest (state %s): %w", p.UUID, p.State, errdefs.ErrNotFound)
		}
		return nil, err
	}
	var pm schema.PodManifest
	if err := json.Unmarshal(data, &pm); err != nil {
		return nil, fmt.Errorf("pod %s: pod manifest: %w: %w", p.UUID, err, errdefs.ErrInvalid)
	}
	return &pm, nil
}

// ManifestBytes returns the pod manifest as stored.
func (p *Pod) ManifestBytes() ([]byte, error) {
	data, err := os.ReadFile(contract.PodManifest(p.Path()))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("pod %s has no pod manifest (state %s): %w", p.UUID, p.State, errdefs.ErrNotFound)
	}
	return data, err
}

// stage1Data is where files stage1 wrote into its rootfs can be read,
// whether or not the rootfs is still mounted: an overlay's upper directory
// holds every change.
func (p *Pod) stage1Data(elem ...string) string {
	if rec, err := p.record(); err == nil && rec.Overlay {
		if tree, err := os.ReadFile(contract.Stage1TreeStoreID(p.Path())); err == nil {
			return filepath.Join(append([]string{contract.OverlayUpper(p.Path(), strings.TrimSpace(string(tree)), "")}, elem...)...)
		}
	}
	return filepath.Join(append([]string{contract.Stage1Rootfs(p.Path())}, elem...)...)
}

// Pid returns the PID stage1 reported: the pid file, or the only child of
// the process named in ppid.
func (p *Pod) Pid() (int, error) {
	if data, err := os.ReadFile(contract.PidFile(p.Path())); err == nil {
		return parsePid(data)
	}
	data, err := os.ReadFile(contract.PpidFile(p.Path()))
	if err != nil {
		return 0, fmt.Errorf("pod %s has not reported its PID yet: %w", p.UUID, errdefs.ErrNotFound)
	}
	ppid, err := parsePid(data)
	if err != nil {
		return 0, err
	}
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", ppid, ppid))
	if err != nil {
		return 0, fmt.Errorf("pod %s: children of %d: %w", p.UUID, ppid, err)
	}
	f := strings.Fields(string(children))
	if len(f) != 1 {
		return 0, fmt.Errorf("pod %s: process %d has %d children, want 1: %w", p.UUID, ppid, len(f), errdefs.ErrNotFound)
	}
	return parsePid([]byte(f[0]))
}

func parsePid(b []byte) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad pid %q: %w", strings.TrimSpace(string(b)), errdefs.ErrInvalid)
	}
	return n, nil
}

// ReadStatus gathers the pod's status.
func (p *Pod) ReadStatus() (*Status, error) { return p.readStatus(nil) }

// readStatus gathers the pod's status, taking its apps from sum (a current
// summary of a pod that is not a sandbox) when given, rather than from the
// pod manifest; Status.Manifest is then nil.
func (p *Pod) readStatus(sum *podSummary) (*Status, error) {
	st := &Status{UUID: p.UUID, State: p.State}
	if sum != nil {
		st.CreatedAt = sum.CreatedAt
	} else {
		st.CreatedAt = p.CreatedAt()
	}
	if p.dir == dirExitedGarbage || p.dir == dirGarbage {
		var sx unix.Stat_t
		if err := unix.Stat(p.Path(), &sx); err == nil {
			st.GCMarkedAt = time.Unix(sx.Ctim.Sec, sx.Ctim.Nsec)
		}
	}
	if sum != nil && p.neverStarted() {
		// A pod that never reached run has no start time, networks, PID
		// or exit statuses to read.
		for _, a := range sum.Apps {
			st.Apps = append(st.Apps, AppStatus{Name: a.Name, ImageID: a.ImageID, ImageName: a.ImageName})
		}
		return st, nil
	}
	rec, recErr := p.record()
	if recErr == nil {
		st.StartedAt = rec.StartedAt
	}
	st.Networks, _ = network.ReadNetInfo(p.Path())
	if data, err := os.ReadFile(contract.KVMBootFile(p.Path())); err == nil {
		var kb contract.KVMBoot
		if json.Unmarshal(data, &kb) == nil {
			st.KVM = &kb
		}
	}
	switch {
	case p.State == Running:
		st.Pid, _ = p.Pid()
	case p.State.AfterRun():
		// For a pod that has exited, only the pid stage1 recorded (as rkt
		// shows it): its ppid's children are long gone, and the PID may
		// be another process's by now.
		if data, err := os.ReadFile(contract.PidFile(p.Path())); err == nil {
			st.Pid, _ = parsePid(data)
		}
	}
	var apps []AppStatus
	var pm *schema.PodManifest
	if sum != nil {
		for _, a := range sum.Apps {
			apps = append(apps, AppStatus{Name: a.Name, ImageID: a.ImageID, ImageName: a.ImageName})
		}
	} else {
		var err error
		pm, err = p.Manifest()
		if err != nil {
			if errors.Is(err, errdefs.ErrNotFound) {
				return st, nil // embryo or failed prepare
			}
			return nil, err
		}
		st.Manifest = pm
		for _, ra := range pm.Apps {
			apps = append(apps, AppStatus{Name: ra.Name.String(), ImageID: ra.Image.ID.String(), ImageName: imageNameOf(ra)})
		}
	}
	// The stage1 files' directory, worked out once for all apps.
	stage1Dir := contract.Stage1Rootfs(p.Path())
	if recErr == nil && rec.Overlay {
		if tree, err := os.ReadFile(contract.Stage1TreeStoreID(p.Path())); err == nil {
			stage1Dir = contract.OverlayUpper(p.Path(), strings.TrimSpace(string(tree)), "")
		}
	}
	for _, as := range apps {
		path := filepath.Join(stage1Dir, contract.Stage1AppStatus(as.Name))
		if data, err := os.ReadFile(path); err == nil {
			if code, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
				as.ExitCode = &code
				if fi, err := os.Stat(path); err == nil {
					as.ExitedAt = fi.ModTime()
				}
			}
		}
		if data, err := os.ReadFile(path + ".json"); err == nil {
			var extra struct {
				OOMKilled bool `json:"oomKilled"`
			}
			if json.Unmarshal(data, &extra) == nil {
				as.OOMKilled = extra.OOMKilled
			}
		}
		st.Apps = append(st.Apps, as)
	}
	if pm != nil && Mutable(pm) {
		apps, err := p.Apps()
		if err != nil {
			return nil, err
		}
		for i, a := range apps {
			if i < len(st.Apps) && st.Apps[i].Name == a.Name {
				st.Apps[i].State = a.State
				if a.State == contract.AppRunning {
					st.Apps[i].ExitCode = nil // from an earlier run
				}
			}
		}
	}
	return st, nil
}

// neverStarted says whether the pod's directory is one of a pod that never
// reached run: embryo, prepare, prepared, or garbage (a failed or expired
// prepare).
func (p *Pod) neverStarted() bool {
	return p.dir == dirEmbryo || p.dir == dirPrepare || p.dir == dirPrepared || p.dir == dirGarbage
}

// TreeInUse returns a function that reports whether any pod that is not
// garbage yet refers to a rendered tree, for the image store's removal and
// gc (see Documentation/design.md, "Rendered trees").
func TreeInUse(podsDir string) func(treeID string) (bool, error) {
	return func(treeID string) (bool, error) {
		for _, d := range allStateDirs() {
			if d == dirGarbage {
				continue
			}
			ents, err := os.ReadDir(filepath.Join(podsDir, string(d)))
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return false, err
			}
			for _, e := range ents {
				podDir := filepath.Join(podsDir, string(d), e.Name())
				if refersTo(contract.Stage1TreeStoreID(podDir), treeID) {
					return true, nil
				}
				apps, _ := os.ReadDir(contract.AppsInfo(podDir))
				for _, a := range apps {
					if refersTo(contract.AppTreeStoreID(podDir, a.Name()), treeID) {
						return true, nil
					}
				}
				// A pod still being prepared may not have written its
				// references yet; it holds the tree's lock while it does.
			}
		}
		return false, nil
	}
}

func refersTo(path, treeID string) bool {
	data, err := os.ReadFile(path)
	return err == nil && strings.TrimSpace(string(data)) == treeID
}

func appNameOrEmpty(s string) types.ACName {
	n, err := types.NewACName(s)
	if err != nil {
		return ""
	}
	return *n
}
