package stage2

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func TestCommandCarriesTheSpec(t *testing.T) {
	adj := 10
	app := validApp()
	app.Env = []string{"A=1"}
	app.OOMScoreAdj = &adj
	app.Seccomp = &Seccomp{Mode: SeccompRemove, Syscalls: []string{"ptrace"}, Errno: 38}
	app.Mounts = []Mount{{Source: "proc", Target: "/proc", FSType: "proc", Flags: unix.MS_NOSUID, CreateDir: true}}
	cmd, err := Command(app)
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Path != "/proc/self/exe" || cmd.Args[0] != LauncherName {
		t.Errorf("command %s %q", cmd.Path, cmd.Args)
	}
	if cmd.SysProcAttr.Cloneflags&syscall.CLONE_NEWNS == 0 {
		t.Errorf("no new mount namespace")
	}
	for _, a := range cmd.Args {
		if strings.Contains(a, "/bin/web") {
			t.Errorf("the spec leaked into argv: %q", cmd.Args)
		}
	}
	// The memfd is sealed: nobody can change the spec after Command.
	f := cmd.ExtraFiles[0]
	if _, err := f.Write([]byte("x")); err == nil {
		t.Errorf("the spec could be written to")
	}
	// Reading it back, as the launcher does, gives the app.
	fd, err := unix.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err := readSpec([]string{"--spec-fd=" + strconv.Itoa(fd)})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, app) {
		t.Errorf("spec round trip:\n got %+v\nwant %+v", got, app)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
		t.Errorf("the spec descriptor was left open")
	}
}

func TestCommandRejectsInvalidApps(t *testing.T) {
	app := validApp()
	app.Root = "relative"
	if _, err := Command(app); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("Command: %v", err)
	}
}

func TestReadSpecErrors(t *testing.T) {
	memfd := func(content string) string {
		f, err := sealedMemfd("test", []byte(content))
		if err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Dup(int(f.Fd()))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		return "--spec-fd=" + strconv.Itoa(fd)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no args", nil, "usage"},
		{"stdin", []string{"--spec-fd=0"}, "usage"},
		{"extra args", []string{"--spec-fd=3", "x"}, "usage"},
		{"unknown flag", []string{"--spec=3"}, "arguments"},
		{"not json", []string{memfd("{")}, "decode spec"},
		{"unknown field", []string{memfd(`{"version":1,"app":{"name":"a","bogus":1}}`)}, "decode spec"},
		{"version", []string{memfd(`{"version":2,"app":{}}`)}, "version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readSpec(tc.args)
			if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want ErrInvalid about %q", err, tc.want)
			}
		})
	}
}

func TestLaunchRejectsInvalidApps(t *testing.T) {
	app := validApp()
	app.WorkingDir = "relative"
	err := Launch(app)
	if ExitCode(err) != ExitSetupFailed || !errors.Is(err, errdefs.ErrInvalid) ||
		err.Error() != `app "web": working directory "relative" is not absolute: invalid` {
		t.Errorf("Launch: %v", err)
	}
}
