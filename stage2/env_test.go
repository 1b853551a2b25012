package stage2

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"
)

func TestEnvironmentPrecedence(t *testing.T) {
	t.Setenv("TERM", "xterm-256color")
	root := idRoot(t)
	image := types.Environment{
		{Name: "PATH", Value: "/app/bin"},
		{Name: "FROM_IMAGE", Value: "image"},
		{Name: "OVERRIDDEN", Value: "image"},
	}
	got := Environment(root, "web", image, []string{"OVERRIDDEN=cli", "NEW=a=b", "NOEQUALS", "=empty"})
	want := []string{
		"AC_APP_NAME=web",
		"FROM_IMAGE=image",
		"HOME=/root",
		"LOGNAME=root",
		"NEW=a=b",
		"OVERRIDDEN=cli",
		"PATH=/app/bin",
		"SHELL=/bin/sh",
		"TERM=xterm-256color",
		"USER=root",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Environment:\n got %q\nwant %q", got, want)
	}
	// The command line wins over the defaults too, except for AC_APP_NAME,
	// which is the executor's: neither the image nor the command line can
	// pass one app off as another.
	got = Environment(root, "web", types.Environment{{Name: "AC_APP_NAME", Value: "image"}}, []string{"AC_APP_NAME=other", "HOME=/h"})
	if envValue(got, "AC_APP_NAME", "") != "web" || envValue(got, "HOME", "") != "/h" {
		t.Errorf("overrides of defaults: %q", got)
	}
}

func TestEnvironmentDefaults(t *testing.T) {
	t.Setenv("TERM", "")
	os.Unsetenv("TERM")
	root := idRoot(t)
	got := Environment(root, "app", nil, nil)
	want := []string{"AC_APP_NAME=app", "HOME=/root", "LOGNAME=root", "PATH=" + DefaultPath, "SHELL=/bin/sh", "USER=root"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\n got %q\nwant %q", got, want)
	}
	// Without passwd file, root still gets root's defaults.
	if got := Environment(t.TempDir(), "app", nil, nil); !reflect.DeepEqual(got, want) {
		t.Errorf("defaults without passwd:\n got %q\nwant %q", got, want)
	}
}

func TestEnvironmentForUser(t *testing.T) {
	os.Unsetenv("TERM")
	root := idRoot(t)
	for _, tc := range []struct {
		user string
		want map[string]string
	}{
		{"alice", map[string]string{"HOME": "/home/alice", "USER": "alice", "LOGNAME": "alice", "SHELL": "/bin/ash"}},
		{"1000", map[string]string{"HOME": "/home/alice", "USER": "alice", "SHELL": "/bin/ash"}},
		{"4242", map[string]string{"HOME": "/", "USER": "", "LOGNAME": "", "SHELL": "/bin/sh"}},
		{"0", map[string]string{"HOME": "/root", "USER": "root"}},
	} {
		env := EnvironmentForUser(root, "app", tc.user, nil, nil)
		for k, v := range tc.want {
			if got := envValue(env, k, ""); got != v {
				t.Errorf("user %s: %s=%q, want %q (%q)", tc.user, k, got, v, env)
			}
		}
	}
	// A user unknown to the image gets the neutral defaults.
	env := EnvironmentForUser(filepath.Join(root, "nonexistent"), "app", "bob", nil, nil)
	if envValue(env, "HOME", "") != "/" || envValue(env, "USER", "none") != "none" {
		t.Errorf("unknown user: %q", env)
	}
}

func TestSetEnv(t *testing.T) {
	got := SetEnv([]string{"A=1", "AC_METADATA_URL=http://evil", "Z=2", "AC_METADATA_URL=again"}, "AC_METADATA_URL", "http://127.0.0.1:18112/t")
	want := []string{"A=1", "AC_METADATA_URL=http://127.0.0.1:18112/t", "Z=2"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("SetEnv = %q, want %q", got, want)
	}
}
