package nspawn

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/pod"
)

// A mutable pod (a sandbox) keeps, in the container's /orbit-pod, what
// adding an app later needs: the run flags (sandbox.json) and each added
// app's launch spec (apps/<app>.json, read by the supervisor).
const (
	sandboxFile = podDataDir + "/sandbox.json"
	appSpecDir  = podDataDir + "/apps"
)

// How long an app entrypoint waits for the supervisor: a stop waits for
// the app's grace period and its post-stop handlers.
const (
	controlTimeout     = 30 * time.Second
	controlStopTimeout = 5 * time.Minute
)

// The app entrypoints (contract.AppEntrypoints).
func AppAdd(args []string) int {
	return pod.Main("stage1 nspawn app/add", args, appEntry(contract.AppAdd, addApp))
}

func AppStart(args []string) int {
	return pod.Main("stage1 nspawn app/start", args, appEntry(contract.AppStart, startApp))
}

func AppStop(args []string) int {
	return pod.Main("stage1 nspawn app/stop", args, appEntry(contract.AppStop, stopApp))
}

func AppRm(args []string) int {
	return pod.Main("stage1 nspawn app/rm", args, appEntry(contract.AppRm, rmApp))
}

func appEntry(e contract.Entrypoint, do func(p *pod.Pod, app string) error) func([]string) (int, error) {
	return func(args []string) (int, error) {
		a, err := contract.ParseApp(e, args)
		if err != nil {
			return 0, err
		}
		p, err := pod.Load(".", a.UUID)
		if err != nil {
			return 0, err
		}
		if v, _ := p.Manifest.Annotations.Get(contract.AnnotationMutable); v != contract.AnnotationMutableTrue {
			return 0, fmt.Errorf("pod %s is not mutable: its apps were fixed when it was prepared", a.UUID)
		}
		return 0, do(p, a.App)
	}
}

// checkSandbox refuses what a mutable pod cannot be.
func checkSandbox(p *pod.Pod, flags *contract.RunOptions) error {
	if flags.Interactive {
		return fmt.Errorf("--interactive: a mutable pod has no single app to give the terminal to")
	}
	return nil
}

// planSandbox makes the supervisor serve the control socket and records
// what app/add needs.
func planSandbox(p *pod.Pod, flags *contract.RunOptions, pl *plan) error {
	pl.config.Mutable = true
	pl.config.ControlSocket = contract.Stage1ControlSocket
	pl.config.AppSpecDir = appSpecDir
	if err := os.MkdirAll(filepath.Join(p.Stage1Rootfs(), appSpecDir), 0o700); err != nil {
		return err
	}
	saved := *flags
	saved.MDSToken = "" // the supervisor has it; nothing else needs it
	b, err := json.Marshal(saved)
	if err != nil {
		return err
	}
	return atomicfile.Replace(filepath.Join(p.Stage1Rootfs(), sandboxFile), b, 0o600)
}

// sandboxHostBinds binds every host volume of the pod into the container
// at start, so that apps added later can mount any of them; it returns
// the map planApp takes.
func sandboxHostBinds(p *pod.Pod, binds *[]bind) map[string]string {
	m := map[string]string{}
	vols := append([]types.Volume(nil), p.Manifest.Volumes...)
	sort.Slice(vols, func(i, j int) bool { return vols[i].Name < vols[j].Name })
	for _, v := range vols {
		if v.Kind != "host" {
			continue
		}
		if _, ok := m[v.Source]; ok {
			continue
		}
		t := filepath.Join(hostVolumesDir, v.Name.String())
		m[v.Source] = t
		*binds = append(*binds, bind{source: v.Source, target: t})
	}
	return m
}

// readSandbox reads the run flags the sandbox was started with.
func readSandbox(p *pod.Pod) (*contract.RunOptions, error) {
	b, err := os.ReadFile(filepath.Join(p.Stage1Rootfs(), sandboxFile))
	if err != nil {
		return nil, fmt.Errorf("the pod was not started as a sandbox: %w", err)
	}
	var flags contract.RunOptions
	if err := json.Unmarshal(b, &flags); err != nil {
		return nil, fmt.Errorf("%s: %w", sandboxFile, err)
	}
	return &flags, nil
}

// addApp plans an app of the pod manifest exactly as run plans its apps
// (volumes, DNS files, isolators, user), writes its launch spec for the
// supervisor, and makes it known to the supervisor, with its log files.
func addApp(p *pod.Pod, name string) error {
	flags, err := readSandbox(p)
	if err != nil {
		return err
	}
	var ra *schema.RuntimeApp
	for i := range p.Manifest.Apps {
		if p.Manifest.Apps[i].Name.String() == name {
			ra = &p.Manifest.Apps[i]
		}
	}
	if ra == nil {
		return fmt.Errorf("the pod manifest has no app %q: %w", name, errdefs.ErrNotFound)
	}
	im, err := p.ImageManifest(ra.Name)
	if err != nil {
		return err
	}
	var startBinds, extra []bind
	dnsFiles, hostsGiven, err := planDNS(p, flags, &startBinds)
	if err != nil {
		return err
	}
	hostBinds := sandboxHostBinds(p, &startBinds)
	spec, err := planApp(p, ra, im, flags, dnsFiles, hostsGiven, hostBinds, &extra)
	if err != nil {
		return err
	}
	if len(extra) > 0 {
		return fmt.Errorf("app %s needs %s, which was not bound into the pod when it started: %w", name, extra[0].source, errdefs.ErrInvalid)
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	if err := atomicfile.Replace(filepath.Join(p.Stage1Rootfs(), appSpecDir, name+".json"), b, 0o600); err != nil {
		return err
	}
	req := contract.ControlRequest{Op: contract.OpAdd, App: name}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	opened := map[string]*os.File{}
	for _, l := range []struct{ annotation, name string }{{contract.AnnotationAppStdout, "stdout"}, {contract.AnnotationAppStderr, "stderr"}} {
		path, ok := ra.Annotations.Get(l.annotation)
		if !ok || path == "" {
			continue
		}
		if !filepath.IsAbs(path) {
			return fmt.Errorf("app %s: log file %q is not an absolute path: %w", name, path, errdefs.ErrInvalid)
		}
		f := opened[path]
		if f == nil {
			f, err = os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
			if err != nil {
				return fmt.Errorf("app %s: log file: %w", name, err)
			}
			opened[path] = f
		}
		files = append(files, f)
		req.Files = append(req.Files, l.name)
	}
	_, err = contract.CallControl(contract.ControlSocket(p.Dir), req, files, controlTimeout)
	return controlErr(err)
}

// startApp starts an app; one the supervisor does not know (a command
// that recorded it was killed before it said so) is added first.
func startApp(p *pod.Pod, name string) error {
	_, err := contract.CallControl(contract.ControlSocket(p.Dir), contract.ControlRequest{Op: contract.OpStart, App: name}, nil, controlTimeout)
	if contract.IsControlError(err, contract.ControlErrNotFound) {
		if err := addApp(p, name); err != nil {
			return err
		}
		_, err = contract.CallControl(contract.ControlSocket(p.Dir), contract.ControlRequest{Op: contract.OpStart, App: name}, nil, controlTimeout)
	}
	return controlErr(err)
}

// stopApp stops an app and returns once its status is recorded.
func stopApp(p *pod.Pod, name string) error {
	_, err := contract.CallControl(contract.ControlSocket(p.Dir), contract.ControlRequest{Op: contract.OpStop, App: name}, nil, controlStopTimeout)
	if contract.IsControlError(err, contract.ControlErrNotFound) {
		return nil // never added to the supervisor: nothing runs
	}
	return controlErr(err)
}

// rmApp makes the supervisor forget the app and removes what this flavour
// kept for it.
func rmApp(p *pod.Pod, name string) error {
	_, err := contract.CallControl(contract.ControlSocket(p.Dir), contract.ControlRequest{Op: contract.OpRemove, App: name}, nil, controlTimeout)
	if err != nil {
		return controlErr(err)
	}
	for _, f := range []string{filepath.Join(p.Stage1Rootfs(), appSpecDir, name+".json"), filepath.Join(contract.InStage1(p.Dir, contract.Stage1EnvDir), name)} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// controlErr words a supervisor's answer with orbit's error classes.
func controlErr(err error) error {
	if err == nil {
		return nil
	}
	var ce *contract.ControlError
	if !errors.As(err, &ce) {
		return fmt.Errorf("the pod's supervisor: %w", err)
	}
	class := errdefs.ErrInvalid
	switch ce.Kind {
	case contract.ControlErrNotFound:
		class = errdefs.ErrNotFound
	case contract.ControlErrBusy, contract.ControlErrExists:
		class = errdefs.ErrBusy
	}
	return fmt.Errorf("the pod's supervisor: %s: %w", ce.Message, class)
}
