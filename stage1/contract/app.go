package contract

import (
	"fmt"
	"path/filepath"
	"strings"
)

// The app entrypoints (rkt's experimental app-level interface): a stage1
// whose image names them can run a mutable pod, started with no apps
// (FlagMutable) and changed while it runs. Each runs in the pod directory,
// with AppArgs, while stage0 holds the pod's apps lock (AppsLock), after
// stage0 has recorded the change in the pod directory.
const (
	// AppAdd makes an app that stage0 has laid out and added to the pod
	// manifest known to the running pod, in the created state.
	AppAdd Entrypoint = "app/add"
	// AppStart starts a created or exited app.
	AppStart Entrypoint = "app/start"
	// AppStop stops a running app (SIGTERM, then SIGKILL after the pod's
	// grace period) and returns once its exit status is recorded.
	AppStop Entrypoint = "app/stop"
	// AppRm makes the running pod forget an app that is not running;
	// stage0 has removed it from the pod manifest and removes its files.
	AppRm Entrypoint = "app/rm"
)

// AppEntrypoints lists the app entrypoints, in the order they are
// documented.
func AppEntrypoints() []Entrypoint { return []Entrypoint{AppAdd, AppStart, AppStop, AppRm} }

// AnnotationMutableTrue is AnnotationMutable's value in a pod whose apps
// may change while it runs (a sandbox); any other value, or none, means
// the pod's apps are fixed.
const AnnotationMutableTrue = "true"

// Annotations of an app in a pod manifest that name the host files its
// standard output and error are copied to, besides the pod's output
// (`orbit app add --stdout/--stderr/--log`). Values are absolute paths.
const (
	AnnotationAppStdout = "orbit.dev/stdout-file"
	AnnotationAppStderr = "orbit.dev/stderr-file"
)

// AppArgs are the app entrypoints' arguments: `[--debug] --app=NAME UUID`.
type AppArgs struct {
	Debug bool
	App   string
	UUID  string
}

// Args builds an app entrypoint's arguments.
func (a *AppArgs) Args() []string {
	var args []string
	if a.Debug {
		args = append(args, "--debug")
	}
	return append(args, "--app="+a.App, a.UUID)
}

// ParseApp reads an app entrypoint's arguments.
func ParseApp(e Entrypoint, args []string) (*AppArgs, error) {
	var a AppArgs
	fs := newFlagSet(e)
	fs.BoolVar(&a.Debug, "debug", false, "")
	fs.StringVar(&a.App, "app", "", "")
	uuid, err := parseWithUUID(fs, args)
	if err != nil {
		return nil, err
	}
	if a.App == "" || strings.ContainsAny(a.App, "/\x00") || a.App == "." || a.App == ".." {
		return nil, fmt.Errorf("--app: want an app name, got %q", a.App)
	}
	a.UUID = uuid
	return &a, nil
}

// AppsLock is the file stage0 flocks exclusively while it changes a
// mutable pod's apps (and while it runs an app entrypoint), so that
// changes to one pod's apps happen one at a time, whichever command makes
// them.
func AppsLock(dir string) string { return filepath.Join(dir, "apps.lock") }

// Stage1ControlDir holds the control socket of a mutable pod's
// supervisor, inside the stage1 rootfs (mode 0700); Stage1ControlSocket is
// the socket itself (mode 0600). Only root on the host reaches it.
const (
	Stage1ControlDir    = "/rkt/control"
	Stage1ControlSocket = Stage1ControlDir + "/supervisor.sock"
)

// ControlSocket is the host path of a pod's control socket.
func ControlSocket(dir string) string { return InStage1(dir, Stage1ControlSocket) }

// AppStagingPrefix starts the names of the directories stage0 lays an app
// out in before it renames them into place (in AppsInfo and in
// Stage1AppsDir); such a directory belongs to no app, and whatever changes
// the pod's apps next removes it.
const AppStagingPrefix = ".staging-"

// Stage1AppPid is the file the supervisor writes when an app's process
// starts (its PID, decimal, with the start time as mtime) and removes once
// the app's exit status is recorded.
func Stage1AppPid(app string) string { return filepath.Join(Stage1StatusDir, app+".pid") }

// Stage1AppStatusJSON is the app's exit status with details (signal, OOM
// kill, start and exit times), written before Stage1AppStatus.
func Stage1AppStatusJSON(app string) string { return filepath.Join(Stage1StatusDir, app+".json") }
