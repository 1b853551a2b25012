// Package supervisor is a pod's PID 1: it starts the pod's apps through the
// stage2 launcher, each in its own cgroup, runs their pre-start and post-stop
// event handlers, reaps every zombie, forwards signals, records each app's
// exit status and time, and returns when the pod is done.
//
// It is built into a small static binary of its own
// (cmd/orbit-supervisor) so stage1 images that run it as the init of a
// container or a VM need not carry the whole orbit binary; keep its imports
// lean. See Documentation/supervisor.md.
package supervisor

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/cgroup"
	"github.com/orbit-containers/orbit/stage2"
)

// AppSpec is one app of the pod.
type AppSpec struct {
	// App is what stage2 launches.
	App stage2.App `json:"app"`
	// PreStart and PostStop are the argv of the image's event handlers.
	// Each runs through stage2 like the app itself (same root, environment,
	// user, working directory), in the app's cgroup.
	PreStart [][]string `json:"preStart,omitempty"`
	PostStop [][]string `json:"postStop,omitempty"`
	// Limits are the app's cgroup limits.
	Limits cgroup.Limits `json:"limits"`
	// SocketActivated hands the app the listening sockets the supervisor
	// was started with (socket activation), as descriptors 3 and up.
	SocketActivated bool `json:"socketActivated,omitempty"`
}

// Config is what Run needs. Its JSON form is the file Main reads.
type Config struct {
	Apps []AppSpec `json:"apps"`
	// CgroupParent is the pod's cgroup ("orbit/<uuid>"), relative to the
	// root of each hierarchy as the supervisor sees it ("." for that root
	// itself, as inside a container with a cgroup namespace of its own);
	// each app gets CgroupParent/<app>. Empty runs the apps without cgroups (then no app
	// may have Limits).
	CgroupParent string `json:"cgroupParent,omitempty"`
	// WritableCgroups: the cgroup mounts are read-only (a container
	// manager such as systemd-nspawn mounts them so, with the container's
	// own cgroup namespace as their root). The supervisor then makes the
	// apps' groups through writable copies of the mounts that only its own
	// descriptors reach, and makes every visible cgroup mount read-only.
	WritableCgroups bool `json:"writableCgroups,omitempty"`
	// StatusDir receives, for each app that ran (or whose pre-start failed),
	// <app>: its decimal exit status (128+signal when killed), with the
	// exit time as mtime, and <app>.json: a Status. Empty writes nothing.
	StatusDir string `json:"statusDir,omitempty"`
	// NotifyReady sends READY=1 to $NOTIFY_SOCKET (sd_notify) once every
	// app has started (or failed to), for a service manager waiting for
	// the pod; stage1 sets it when no app reports readiness itself.
	NotifyReady bool `json:"notifyReady,omitempty"`
	// Interactive gives the single app the supervisor's stdin and its
	// terminal as controlling terminal.
	Interactive bool `json:"interactive,omitempty"`
	// StopGracePeriod is how long apps have between SIGTERM and SIGKILL
	// when the pod stops; zero means DefaultStopGracePeriod. In JSON it is
	// a number of nanoseconds.
	StopGracePeriod time.Duration `json:"stopGracePeriod,omitempty"`
	// Mutable makes a pod whose apps change while it runs (a sandbox): it
	// may start with no apps, an app that exits leaves the others running,
	// and the pod runs until it is stopped. Apps are added, started,
	// stopped and removed over the control socket (ControlSocket), each
	// added app's AppSpec read from AppSpecDir/<app>.json.
	Mutable       bool   `json:"mutable,omitempty"`
	ControlSocket string `json:"controlSocket,omitempty"`
	AppSpecDir    string `json:"appSpecDir,omitempty"`
	// JournalSocket, when set, is systemd-journald's native socket (bound
	// in by stage1 when the pod's output is a unit's journal stream): the
	// lines of a multi-app pod's apps go there, each under its app's name
	// as syslog identifier, instead of prefixed to the output.
	JournalSocket string `json:"journalSocket,omitempty"`
	// HostIPC: the last of the descriptors the supervisor was started with
	// (socket activation's, after the sockets) is the host's IPC
	// namespace, which the supervisor joins before anything else, so that
	// every app runs in it (rkt's --ipc=parent). See JoinHostIPC.
	HostIPC bool `json:"hostIPC,omitempty"`
	// Metadata, when set, gives every app AC_METADATA_URL.
	Metadata *MetadataConfig `json:"metadata,omitempty"`
	// Stdout and Stderr receive the apps' output (os.Stdout, os.Stderr when
	// nil).
	Stdout io.Writer `json:"-"`
	Stderr io.Writer `json:"-"`
	// Log receives the supervisor's own diagnostics (discarded when nil).
	Log *slog.Logger `json:"-"`
	// GuestEnter, in a VM's supervisor (guest mode), is the enter port,
	// over which the host asks for commands beside the apps.
	GuestEnter io.ReadWriter `json:"-"`
}

// DefaultStopGracePeriod is the grace period when Config leaves it zero.
const DefaultStopGracePeriod = 10 * time.Second

// Exit codes of the pod besides the apps' own.
const (
	// ExitSetupFailed is an app's recorded status when it could not be
	// started at all (its cgroup could not be made, the launcher could not
	// be run); the launcher itself exits with it too when it fails.
	ExitSetupFailed = stage2.ExitSetupFailed
)

// Status is the record written to StatusDir/<app>.json.
type Status struct {
	// ExitCode is the app's exit status: its exit code, 128+signal when a
	// signal killed it, the failing pre-start handler's status when one
	// failed, or ExitSetupFailed.
	ExitCode int `json:"exitCode"`
	// Signal names the signal that killed it ("SIGKILL"), if one did.
	Signal string `json:"signal,omitempty"`
	// OOMKilled: the kernel's OOM killer killed a process of the app's
	// cgroup.
	OOMKilled bool      `json:"oomKilled"`
	StartedAt time.Time `json:"startedAt"`
	ExitedAt  time.Time `json:"exitedAt"`
	// Error says why the app did not run, when it did not.
	Error string `json:"error,omitempty"`
}

// validate checks the configuration before anything starts.
func (c *Config) validate() error {
	if len(c.Apps) == 0 && !c.Mutable {
		return fmt.Errorf("pod has no apps: %w", errdefs.ErrInvalid)
	}
	if c.Mutable && (c.ControlSocket == "" || c.AppSpecDir == "") {
		return fmt.Errorf("a mutable pod needs a control socket and an app spec directory: %w", errdefs.ErrInvalid)
	}
	if c.Mutable && c.Interactive {
		return fmt.Errorf("a mutable pod cannot be interactive: %w", errdefs.ErrInvalid)
	}
	seen := map[string]bool{}
	for i := range c.Apps {
		a := &c.Apps[i]
		if err := c.validateApp(a); err != nil {
			return err
		}
		if seen[a.App.Name] {
			return fmt.Errorf("app %q twice in the pod: %w", a.App.Name, errdefs.ErrInvalid)
		}
		seen[a.App.Name] = true
	}
	if c.Interactive && len(c.Apps) != 1 {
		return fmt.Errorf("interactive mode needs exactly one app, the pod has %d: %w", len(c.Apps), errdefs.ErrInvalid)
	}
	if c.StopGracePeriod < 0 {
		return fmt.Errorf("negative stop grace period: %w", errdefs.ErrInvalid)
	}
	return nil
}

// validateApp checks one app's spec against the pod's configuration.
func (c *Config) validateApp(a *AppSpec) error {
	if err := a.App.Validate(); err != nil {
		return err
	}
	for _, h := range append(append([][]string(nil), a.PreStart...), a.PostStop...) {
		if len(h) == 0 || h[0] == "" {
			return fmt.Errorf("app %q: empty event handler: %w", a.App.Name, errdefs.ErrInvalid)
		}
	}
	if err := a.Limits.Validate(); err != nil {
		return fmt.Errorf("app %q: %w", a.App.Name, err)
	}
	if c.CgroupParent == "" && a.Limits != (cgroup.Limits{}) {
		return fmt.Errorf("app %q has limits but the pod has no cgroup: %w", a.App.Name, errdefs.ErrInvalid)
	}
	return nil
}
