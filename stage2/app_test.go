package stage2

import (
	"errors"
	"strings"
	"testing"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func validApp() App {
	return App{Name: "web", Root: "/pods/x/rootfs", Exec: []string{"/bin/web", "--port=80"}}
}

func TestValidate(t *testing.T) {
	good := validApp()
	if err := good.Validate(); err != nil {
		t.Fatalf("valid app: %v", err)
	}
	adj, badAdj := -1000, 1001
	for _, tc := range []struct {
		name   string
		modify func(*App)
		want   string
	}{
		{"name", func(a *App) { a.Name = "Web App" }, "app name"},
		{"empty name", func(a *App) { a.Name = "" }, "app name"},
		{"relative root", func(a *App) { a.Root = "rootfs" }, "root"},
		{"no exec", func(a *App) { a.Exec = nil }, "no program"},
		{"empty program", func(a *App) { a.Exec = []string{""} }, "no program"},
		{"NUL in argument", func(a *App) { a.Exec = append(a.Exec, "a\x00b") }, "NUL"},
		{"env without =", func(a *App) { a.Env = []string{"FOO"} }, "K=V"},
		{"env without name", func(a *App) { a.Env = []string{"=x"} }, "K=V"},
		{"relative working dir", func(a *App) { a.WorkingDir = "srv" }, "working directory"},
		{"negative gid", func(a *App) { a.SupplementaryGIDs = []int{-1} }, "gid"},
		{"relative mount target", func(a *App) { a.Mounts = []Mount{{Source: "tmpfs", Target: "tmp", FSType: "tmpfs"}} }, "mount"},
		{"relative bind source", func(a *App) { a.Mounts = []Mount{{Source: "data", Target: "/data", FSType: "bind"}} }, "bind source"},
		{"file and dir", func(a *App) {
			a.Mounts = []Mount{{Source: "/d", Target: "/d", FSType: "bind", CreateDir: true, CreateFile: true}}
		}, "both"},
		{"relative masked path", func(a *App) { a.MaskedPaths = []string{"proc/kcore"} }, "not absolute"},
		{"relative read-only path", func(a *App) { a.ReadOnlyPaths = []string{"sys"} }, "not absolute"},
		{"unknown capability", func(a *App) { a.Capabilities = &Capabilities{Retain: []string{"CAP_TELEPORT"}} }, "capability"},
		{"seccomp", func(a *App) { a.Seccomp = &Seccomp{Mode: SeccompRemove, Syscalls: []string{"nope"}} }, "seccomp"},
		{"oom", func(a *App) { a.OOMScoreAdj = &badAdj }, "oom"},
		{"rlimit resource", func(a *App) { a.Rlimits = []Rlimit{{Resource: 16, Soft: 1, Hard: 1}} }, "resource limit"},
		{"rlimit order", func(a *App) { a.Rlimits = []Rlimit{{Resource: 7, Soft: 2, Hard: 1}} }, "soft"},
		{"hostname", func(a *App) { a.Hostname = strings.Repeat("h", 65) }, "hostname"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := validApp()
			tc.modify(&a)
			err := a.Validate()
			if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want ErrInvalid about %q", err, tc.want)
			}
		})
	}
	full := validApp()
	full.OOMScoreAdj = &adj
	full.Capabilities = &Capabilities{Retain: []string{}}
	full.Seccomp = &Seccomp{Mode: SeccompRemove, Syscalls: DefaultSeccompRemoveSet()}
	full.Mounts = []Mount{{Source: "/data", Target: "/data", FSType: "bind", ReadOnly: true, CreateDir: true}}
	full.Rlimits = []Rlimit{{Resource: 7, Soft: 1024, Hard: 4096}}
	full.Hostname = "web-1"
	if err := full.Validate(); err != nil {
		t.Errorf("valid app with everything: %v", err)
	}
}

func TestExitCode(t *testing.T) {
	if got := ExitCode(errors.New("plain")); got != ExitSetupFailed {
		t.Errorf("plain error: %d", got)
	}
	err := error(&launchError{app: "a", step: "exec x", code: ExitNotFound, err: errors.New("gone")})
	if got := ExitCode(err); got != ExitNotFound {
		t.Errorf("not found: %d", got)
	}
	if err.Error() != `app "a": exec x: gone` {
		t.Errorf("message %q", err)
	}
}
