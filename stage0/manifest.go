package stage0

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/aci"
	"github.com/orbit-containers/orbit/aci/oci"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// AppSpec is one app of a pod as the command line describes it: an image
// and what to change about the image's app.
type AppSpec struct {
	ImageID string
	// Name is the app's name in the pod; empty means derived from the image
	// name (its last path element).
	Name string
	// Exec replaces the image's exec when set; Args are appended to it.
	Exec []string
	Args []string
	// InheritedEnv ("NAME=VALUE", from --inherit-env and --set-env-file)
	// sits below the image's environment: the image's values win.
	InheritedEnv []string
	// Env is set-env: "NAME=VALUE" pairs overriding the image's environment.
	Env []string
	// User, Group and WorkingDir override the image's when set.
	User, Group, WorkingDir string
	SupplementaryGIDs       []int
	// Isolators are added to (and replace same-named) image isolators.
	Isolators   types.Isolators
	Mounts      []schema.Mount
	Annotations types.Annotations
	// UserAnnotations and UserLabels are free-form (rkt's --user-annotation
	// and --user-label).
	UserAnnotations, UserLabels map[string]string
	// ReadOnlyRootfs makes the app's root filesystem read-only.
	ReadOnlyRootfs bool
}

// PodSpec is everything that goes into a pod manifest.
type PodSpec struct {
	Apps        []AppSpec
	Volumes     []types.Volume
	Ports       []types.ExposedPort
	Annotations types.Annotations
}

// BuildPodManifest turns the command line's description of a pod and the
// apps' image manifests (indexed like spec.Apps) into an appc pod manifest.
func BuildPodManifest(spec PodSpec, images []*schema.ImageManifest) (*schema.PodManifest, error) {
	if len(spec.Apps) == 0 {
		return nil, fmt.Errorf("a pod needs at least one app: %w", errdefs.ErrInvalid)
	}
	if len(images) != len(spec.Apps) {
		return nil, fmt.Errorf("%d apps but %d image manifests: %w", len(spec.Apps), len(images), errdefs.ErrInvalid)
	}
	pm := schema.BlankPodManifest()
	names := map[types.ACName]bool{}
	for i, a := range spec.Apps {
		im := images[i]
		name, err := appName(a.Name, im.Name)
		if err != nil {
			return nil, err
		}
		if names[name] {
			return nil, fmt.Errorf("two apps are named %q; give one another name with --name: %w", name, errdefs.ErrInvalid)
		}
		names[name] = true
		id, err := types.NewHash(a.ImageID)
		if err != nil {
			return nil, fmt.Errorf("app %s: image ID %q: %w", name, a.ImageID, errdefs.ErrInvalid)
		}
		app, err := runtimeApp(a, im)
		if err != nil {
			return nil, fmt.Errorf("app %s: %w", name, err)
		}
		pm.Apps = append(pm.Apps, schema.RuntimeApp{
			Name:           name,
			Image:          schema.RuntimeImage{Name: &im.Name, ID: *id, Labels: im.Labels},
			App:            app,
			Mounts:         a.Mounts,
			ReadOnlyRootFS: a.ReadOnlyRootfs,
			Annotations:    a.Annotations,
		})
	}
	pm.Volumes = append(append([]types.Volume(nil), spec.Volumes...), implicitVolumes(spec.Volumes, pm.Apps, images)...)
	pm.Ports = spec.Ports
	pm.Annotations = spec.Annotations
	if _, ok := pm.Annotations.Get(contract.AnnotationMutable); !ok {
		pm.Annotations.Set(contract.AnnotationMutable, "false")
	}
	// Round-trip through the schema's own validation.
	data, err := pm.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("pod manifest: %w: %w", err, errdefs.ErrInvalid)
	}
	var check schema.PodManifest
	if err := check.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("pod manifest: %w: %w", err, errdefs.ErrInvalid)
	}
	return pm, nil
}

// appName derives an app's name from its image name unless one is given.
func appName(given string, image types.ACIdentifier) (types.ACName, error) {
	if given != "" {
		n, err := types.NewACName(given)
		if err != nil {
			return "", fmt.Errorf("app name %q: %w: %w", given, err, errdefs.ErrInvalid)
		}
		return *n, nil
	}
	base := string(image)
	if i := strings.LastIndex(base, "/"); i >= 0 {
		base = base[i+1:]
	}
	n, err := types.SanitizeACName(base)
	if err != nil {
		return "", fmt.Errorf("deriving an app name from image %q: %w: %w", image, err, errdefs.ErrInvalid)
	}
	return types.ACName(n), nil
}

// CheckAppImage refuses an image that cannot be run as an app: one
// without an os label, as rkt refuses it (only images used as
// dependencies may leave it out).
func CheckAppImage(im *schema.ImageManifest) error {
	if _, ok := im.Labels.Get("os"); !ok {
		return fmt.Errorf("image %s: missing os label in the image manifest: %w", im.Name, errdefs.ErrInvalid)
	}
	return nil
}

// runtimeApp is the image's app with the command line's changes applied.
func runtimeApp(a AppSpec, im *schema.ImageManifest) (*types.App, error) {
	if err := CheckAppImage(im); err != nil {
		return nil, err
	}
	var app types.App
	if im.App != nil {
		app = *im.App
		// Copy the slices we may change so the image manifest stays as read.
		app.Exec = append(types.Exec(nil), im.App.Exec...)
		app.Environment = append(types.Environment(nil), im.App.Environment...)
		app.Isolators = append(types.Isolators(nil), im.App.Isolators...)
		app.SupplementaryGIDs = append([]int(nil), im.App.SupplementaryGIDs...)
	}
	if len(a.Exec) > 0 {
		app.Exec = append(types.Exec(nil), a.Exec...)
	} else if ep, ok := oci.Entrypoint(im); ok && len(a.Args) > 0 {
		app.Exec = append(types.Exec(nil), ep...) // arguments replace an OCI image's Cmd
	}
	app.Exec = append(app.Exec, a.Args...)
	if len(app.Exec) == 0 {
		return nil, fmt.Errorf("image %s has no app to run; give one with --exec: %w", im.Name, errdefs.ErrInvalid)
	}
	for _, kv := range a.InheritedEnv {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("environment %q: want NAME=VALUE: %w", kv, errdefs.ErrInvalid)
		}
		if _, inImage := app.Environment.Get(k); !inImage {
			app.Environment.Set(k, v)
		}
	}
	for _, kv := range a.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("environment %q: want NAME=VALUE: %w", kv, errdefs.ErrInvalid)
		}
		app.Environment.Set(k, v)
	}
	if a.User != "" {
		app.User = a.User
	}
	if a.Group != "" {
		app.Group = a.Group
	}
	if app.User == "" {
		app.User = "0"
	}
	if app.Group == "" {
		app.Group = "0"
	}
	if a.WorkingDir != "" {
		app.WorkingDirectory = a.WorkingDir
	}
	if len(a.SupplementaryGIDs) > 0 {
		app.SupplementaryGIDs = append([]int(nil), a.SupplementaryGIDs...)
	}
	if len(a.UserAnnotations) > 0 {
		app.UserAnnotations = types.UserAnnotations(a.UserAnnotations)
	}
	if len(a.UserLabels) > 0 {
		app.UserLabels = types.UserLabels(a.UserLabels)
	}
	if len(a.Isolators) > 0 {
		app.Isolators = overrideIsolators(app.Isolators, a.Isolators)
	}
	return &app, nil
}

// overrideIsolators puts the command line's isolators over the image's: as
// rkt documents, one replaces every image isolator of its kind, so
// --caps-remove replaces an image's capabilities retain-set and
// --seccomp=mode=retain an image's seccomp remove-set.
func overrideIsolators(image, given types.Isolators) types.Isolators {
	kinds := map[string]bool{}
	for _, iso := range given {
		kinds[isolatorKind(iso.Name.String())] = true
	}
	var out types.Isolators
	for _, iso := range image {
		if !kinds[isolatorKind(iso.Name.String())] {
			out = append(out, iso)
		}
	}
	return append(out, given...)
}

// isolatorKind groups the isolators that exclude each other: a retain-set
// and a remove-set of capabilities, or of seccomp syscalls.
func isolatorKind(name string) string {
	switch name {
	case types.LinuxCapabilitiesRetainSetName, types.LinuxCapabilitiesRevokeSetName:
		return "capabilities"
	case types.LinuxSeccompRetainSetName, types.LinuxSeccompRemoveSetName:
		return "seccomp"
	}
	return name
}

// implicitVolumes gives every image mount point that no volume or mount
// serves an empty volume of its own name, as rkt does, so that the app
// finds a writable directory where its image declared one.
func implicitVolumes(given []types.Volume, apps schema.AppList, images []*schema.ImageManifest) []types.Volume {
	have := map[types.ACName]bool{}
	for _, v := range given {
		have[v.Name] = true
	}
	var out []types.Volume
	for i, ra := range apps {
		mounted := map[types.ACName]bool{}
		for _, m := range ra.Mounts {
			mounted[m.Volume] = true
		}
		if images[i].App == nil {
			continue
		}
		for _, mp := range images[i].App.MountPoints {
			if have[mp.Name] || mounted[mp.Name] {
				continue
			}
			have[mp.Name] = true
			mode, uid, gid := "0755", 0, 0
			out = append(out, types.Volume{Name: mp.Name, Kind: "empty", Mode: &mode, UID: &uid, GID: &gid})
		}
	}
	return out
}

// ParsePodManifest reads a pod manifest written by hand. A malformed one
// is reported in one line, with the line and column of the mistake.
func ParsePodManifest(data []byte) (*schema.PodManifest, error) {
	if len(data) > MaxPodManifestSize {
		return nil, fmt.Errorf("pod manifest larger than %d MiB: %w", MaxPodManifestSize>>20, errdefs.ErrInvalid)
	}
	var raw json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			line, col := lineColumn(data, se.Offset)
			return nil, fmt.Errorf("malformed JSON at line %d, column %d: %w: %w", line, col, se, errdefs.ErrInvalid)
		}
		return nil, fmt.Errorf("malformed JSON: %w: %w", err, errdefs.ErrInvalid)
	}
	if err := checkIsolatorValues(data); err != nil {
		return nil, err
	}
	var pm schema.PodManifest
	if err := aci.UnmarshalAppc(data, &pm); err != nil {
		return nil, err
	}
	return &pm, nil
}

// checkIsolatorValues refuses isolators without a value, on which the appc
// schema's decoder dereferences a nil pointer.
func checkIsolatorValues(data []byte) error {
	var apps struct {
		Apps []struct {
			Name string
			App  *struct {
				Isolators []aci.Isolator
			}
		}
	}
	if err := json.Unmarshal(data, &apps); err != nil {
		return fmt.Errorf("%s: %w", oneLineError(err), errdefs.ErrInvalid)
	}
	for _, a := range apps.Apps {
		if a.App == nil {
			continue
		}
		if err := aci.CheckIsolatorValues(fmt.Sprintf("app %q", a.Name), a.App.Isolators); err != nil {
			return err
		}
	}
	return nil
}

// lineColumn turns a byte offset (of the byte after a JSON syntax error)
// into a 1-based line and column.
func lineColumn(data []byte, offset int64) (int, int) {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	before := data[:offset]
	line := bytes.Count(before, []byte("\n")) + 1
	col := len(before) - bytes.LastIndexByte(before, '\n') - 1
	return line, col
}

// oneLineError is err's message with its lines joined.
func oneLineError(err error) string {
	var parts []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}
