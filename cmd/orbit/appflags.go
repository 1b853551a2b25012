package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/spf13/pflag"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage0"
)

// appFlags are the flags that apply to one app. Given before the first
// image they apply to every app; given after an image, to that image only.
type appFlags struct {
	exec, name, user, group, workingDir string
	setEnv, environment                 []string
	supplementaryGIDs                   []string
	readOnlyRootfs                      bool
	memory, cpu                         string
	cpuShares                           string
	capsRetain, capsRemove              []string
	oldCapsRetain, oldCapsRemove        []string // rkt's deprecated --cap-retain, --cap-remove
	seccomp                             string
	oomScoreAdj                         string
	mounts                              []string
	annotations                         []string
	userAnnotations, userLabels         []string
	signature                           string
	// set records which flags were given, for merging with the defaults.
	set map[string]bool
}

func addAppFlags(fs *pflag.FlagSet, a *appFlags) {
	fs.StringVar(&a.exec, "exec", "", "override the image's exec (per app)")
	fs.StringVar(&a.name, "name", "", "the app's name in the pod (per app)")
	fs.StringVar(&a.user, "user", "", "user to run the app as: a name, a UID or a path (per app)")
	fs.StringVar(&a.group, "group", "", "group to run the app as: a name, a GID or a path (per app)")
	fs.StringVar(&a.workingDir, "working-dir", "", "the app's working directory (per app)")
	fs.StringArrayVar(&a.setEnv, "set-env", nil, "an environment variable NAME=VALUE for the apps")
	fs.StringArrayVar(&a.environment, "environment", nil, "an environment variable NAME=VALUE for the app (per app)")
	fs.StringSliceVar(&a.supplementaryGIDs, "supplementary-gids", nil, "supplementary group IDs, comma-separated (per app)")
	fs.BoolVar(&a.readOnlyRootfs, "readonly-rootfs", false, "mount the app's rootfs read-only (per app)")
	fs.StringVar(&a.memory, "memory", "", "memory limit in bytes, as appc and Kubernetes write quantities: k, M, G, T are powers of 1000 (64M = 64,000,000 bytes), Ki, Mi, Gi, Ti powers of 1024 (64Mi = 67,108,864 bytes) (per app)")
	fs.StringVar(&a.cpu, "cpu", "", "CPU limit, e.g. 500m (per app)")
	fs.StringVar(&a.cpuShares, "cpu-shares", "", "relative CPU weight (per app)")
	fs.StringSliceVar(&a.capsRetain, "caps-retain", nil, "capabilities to retain, e.g. CAP_NET_BIND_SERVICE (per app)")
	fs.StringSliceVar(&a.capsRemove, "caps-remove", nil, "capabilities to remove (per app)")
	fs.StringVar(&a.seccomp, "seccomp", "", "seccomp filter: mode=retain|remove,errno=NAME,SYSCALL,... (per app)")
	fs.StringVar(&a.oomScoreAdj, "oom-score-adj", "", "the app's OOM score adjustment (per app)")
	fs.StringArrayVar(&a.mounts, "mount", nil, "mount a volume: volume=NAME,target=PATH")
	fs.StringArrayVar(&a.annotations, "annotation", nil, "an appc annotation NAME=VALUE for the app's runtime manifest (per app)")
	fs.StringArrayVar(&a.userAnnotations, "user-annotation", nil, "a free-form annotation NAME=VALUE for the app (per app)")
	fs.StringArrayVar(&a.userLabels, "user-label", nil, "a free-form label NAME=VALUE for the app (per app)")
	// rkt's deprecated spellings.
	fs.StringSliceVar(&a.oldCapsRetain, "cap-retain", nil, "")
	fs.StringSliceVar(&a.oldCapsRemove, "cap-remove", nil, "")
	fs.MarkDeprecated("cap-retain", "use --caps-retain")
	fs.MarkDeprecated("cap-remove", "use --caps-remove")
	fs.StringVar(&a.signature, "signature", "", "the image's signature file or URL (per app)")
}

// recordSet notes which flags of fs were given, and folds rkt's deprecated
// spellings into their current ones.
func (a *appFlags) recordSet(fs *pflag.FlagSet) {
	a.set = map[string]bool{}
	fs.Visit(func(f *pflag.Flag) { a.set[f.Name] = true })
	a.capsRetain = append(a.capsRetain, a.oldCapsRetain...)
	a.capsRemove = append(a.capsRemove, a.oldCapsRemove...)
	a.set["caps-retain"] = a.set["caps-retain"] || a.set["cap-retain"]
	a.set["caps-remove"] = a.set["caps-remove"] || a.set["cap-remove"]
}

// perAppOnly are flags that make no sense for every app at once.
func perAppOnly() []string { return []string{"exec", "name", "signature"} }

// checkPodWide refuses pod-wide use of flags that belong to one app.
func (a appFlags) checkPodWide() error {
	for _, name := range perAppOnly() {
		if a.set[name] {
			return fmt.Errorf("--%s applies to one app: give it after the image it is for: %w", name, errdefs.ErrInvalid)
		}
	}
	return nil
}

// withDefaults fills what this app did not set from the pod-wide flags.
func (a appFlags) withDefaults(d appFlags) appFlags {
	str := func(name string, v *string, dv string) {
		if !a.set[name] && d.set[name] {
			*v = dv
		}
	}
	str("user", &a.user, d.user)
	str("group", &a.group, d.group)
	str("working-dir", &a.workingDir, d.workingDir)
	str("memory", &a.memory, d.memory)
	str("cpu", &a.cpu, d.cpu)
	str("cpu-shares", &a.cpuShares, d.cpuShares)
	str("seccomp", &a.seccomp, d.seccomp)
	str("oom-score-adj", &a.oomScoreAdj, d.oomScoreAdj)
	if !a.set["supplementary-gids"] {
		a.supplementaryGIDs = d.supplementaryGIDs
	}
	if !a.set["caps-retain"] {
		a.capsRetain = d.capsRetain
	}
	if !a.set["caps-remove"] {
		a.capsRemove = d.capsRemove
	}
	if !a.set["readonly-rootfs"] {
		a.readOnlyRootfs = d.readOnlyRootfs
	}
	a.setEnv = append(append([]string(nil), d.setEnv...), a.setEnv...)
	a.environment = append(append([]string(nil), d.environment...), a.environment...)
	a.mounts = append(append([]string(nil), d.mounts...), a.mounts...)
	a.annotations = append(append([]string(nil), d.annotations...), a.annotations...)
	a.userAnnotations = append(append([]string(nil), d.userAnnotations...), a.userAnnotations...)
	a.userLabels = append(append([]string(nil), d.userLabels...), a.userLabels...)
	return a
}

// appArg is one image on the command line with its flags and arguments.
type appArg struct {
	image string
	flags appFlags
	args  []string
}

// parseAppArgs splits what follows the first image on an `orbit run` or
// `orbit prepare` line into images, each with its own flags and, after
// "--", its arguments up to a lone "---".
func parseAppArgs(args []string, defaults appFlags) ([]appArg, error) {
	var apps []appArg
	for i := 0; i < len(args); {
		if args[i] == "---" {
			i++
			continue
		}
		if strings.HasPrefix(args[i], "-") && args[i] != "-" {
			return nil, fmt.Errorf("flag %s must follow an image or come before the first one: %w", args[i], errdefs.ErrInvalid)
		}
		app := appArg{image: args[i]}
		i++
		fs := pflag.NewFlagSet(app.image, pflag.ContinueOnError)
		fs.SetInterspersed(false)
		fs.Usage = func() {}
		addAppFlags(fs, &app.flags)
		// The image's flags end at the next image, at "--" (its arguments
		// follow) or at a lone "---".
		end := len(args)
		for j := i; j < len(args); j++ {
			if args[j] == "--" {
				break
			}
			if args[j] == "---" {
				end = j
				break
			}
		}
		if err := fs.Parse(args[i:end]); err != nil {
			if name, ok := unknownFlagName(err); ok {
				given := "--" + name
				for _, a := range args[i:end] {
					if a == given || strings.HasPrefix(a, given+"=") {
						given = a
						break
					}
				}
				return nil, &misplacedFlagError{image: app.image, flag: name, given: given}
			}
			return nil, fmt.Errorf("image %s: %w", app.image, err)
		}
		app.flags.recordSet(fs)
		if err := app.flags.validate(); err != nil {
			return nil, fmt.Errorf("image %s: %w", app.image, err)
		}
		rest := append(append([]string(nil), fs.Args()...), args[end:]...)
		if fs.ArgsLenAtDash() == 0 {
			j := 0
			for j < len(rest) && rest[j] != "---" {
				j++
			}
			app.args = append([]string(nil), rest[:j]...)
			rest = rest[j:]
		}
		i = len(args) - len(rest)
		app.flags = app.flags.withDefaults(defaults)
		apps = append(apps, app)
	}
	return apps, nil
}

// appSpec turns an app's flags into stage0's description of it.
func (a appArg) appSpec(imageID string) (stage0.AppSpec, error) {
	f := a.flags
	spec := stage0.AppSpec{
		ImageID:        imageID,
		Name:           f.name,
		Args:           a.args,
		Env:            append(append([]string(nil), f.setEnv...), f.environment...),
		User:           f.user,
		Group:          f.group,
		WorkingDir:     f.workingDir,
		ReadOnlyRootfs: f.readOnlyRootfs,
	}
	if f.exec != "" {
		spec.Exec = []string{f.exec}
	}
	for _, g := range f.supplementaryGIDs {
		n, err := strconv.Atoi(g)
		if err != nil || n < 0 {
			return spec, fmt.Errorf("--supplementary-gids: %q is not a group ID: %w", g, errdefs.ErrInvalid)
		}
		spec.SupplementaryGIDs = append(spec.SupplementaryGIDs, n)
	}
	isos, err := f.isolators()
	if err != nil {
		return spec, err
	}
	spec.Isolators = isos
	for _, m := range f.mounts {
		mnt, err := parseMountFlag(m)
		if err != nil {
			return spec, err
		}
		spec.Mounts = append(spec.Mounts, mnt)
	}
	if spec.UserAnnotations, err = keyValues("--user-annotation", f.userAnnotations); err != nil {
		return spec, err
	}
	if spec.UserLabels, err = keyValues("--user-label", f.userLabels); err != nil {
		return spec, err
	}
	for _, kv := range f.annotations {
		k, v, ok := strings.Cut(kv, "=")
		name, err := types.NewACIdentifier(k)
		if !ok || err != nil {
			return spec, fmt.Errorf("--annotation %q: want NAME=VALUE with a valid name: %w", kv, errdefs.ErrInvalid)
		}
		spec.Annotations.Set(*name, v)
	}
	return spec, nil
}

// parseMountFlag reads --mount volume=NAME,target=PATH.
func parseMountFlag(s string) (schema.Mount, error) {
	var m schema.Mount
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return m, fmt.Errorf("--mount %q: want volume=NAME,target=PATH: %w", s, errdefs.ErrInvalid)
		}
		switch k {
		case "volume":
			n, err := types.NewACName(v)
			if err != nil {
				return m, fmt.Errorf("--mount %q: volume name: %w: %w", s, err, errdefs.ErrInvalid)
			}
			m.Volume = *n
		case "target":
			m.Path = v
		default:
			return m, fmt.Errorf("--mount %q: unknown key %q: %w", s, k, errdefs.ErrInvalid)
		}
	}
	if m.Volume == "" || m.Path == "" {
		return m, fmt.Errorf("--mount %q: want volume=NAME,target=PATH: %w", s, errdefs.ErrInvalid)
	}
	return m, nil
}

// keyValues reads NAME=VALUE flags into a map.
func keyValues(flag string, kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s %q: want NAME=VALUE: %w", flag, kv, errdefs.ErrInvalid)
		}
		m[k] = v
	}
	return m, nil
}

// misplacedFlagError is a flag after an image that is not one of the
// per-app flags: a global flag, a pod-wide one, or a misspelling. The
// command words it (see podFlagHint), as it knows its own flags.
type misplacedFlagError struct {
	image, flag string
	given       string // as on the command line, with its value if given with "="
}

func (e *misplacedFlagError) Error() string {
	return fmt.Sprintf("image %s: unknown flag: --%s", e.image, e.flag)
}

func (e *misplacedFlagError) Unwrap() error { return errdefs.ErrInvalid }

// unknownFlagName reads the flag's name out of pflag's "unknown flag: --x".
func unknownFlagName(err error) (string, bool) {
	const prefix = "unknown flag: --"
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) {
		return "", false
	}
	name, _, _ := strings.Cut(strings.TrimPrefix(msg, prefix), "=")
	return name, name != ""
}
