package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/orbit-containers/orbit/fetch"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/builtin"
)

// TestMain lets the test binary serve as the built-in stage1 entrypoints,
// as orbit's own binary does: the built-in stage1 images the tests write
// are made from the running binary, and gc runs their gc entrypoint.
func TestMain(m *testing.M) {
	if code, ok := runEntrypoint(os.Args); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// cliRun is one invocation of the command tree, in-process, against an
// installation of the test's own (nothing below it needs root).
type cliRun struct {
	Stdout, Stderr string
	Err            error
}

// cliInstall is a data and configuration directory for the CLI tests.
type cliInstall struct {
	t   *testing.T
	dir string
}

func newCLIInstall(t *testing.T) *cliInstall {
	t.Helper()
	return &cliInstall{t: t, dir: t.TempDir()}
}

func (c *cliInstall) data() string { return filepath.Join(c.dir, "data") }

// run executes orbit's root command with args after the installation's
// global flags, as execute does but with its output captured.
func (c *cliInstall) run(args ...string) cliRun {
	c.t.Helper()
	var out, errb bytes.Buffer
	g := &globalOptions{Stdout: &out, Stderr: &errb}
	g.Log = newCLILogger(&errb, false)
	root := newRootCommand(g)
	root.SetOut(&out)
	root.SetArgs(append([]string{
		"--dir=" + c.data(),
		"--local-config=" + filepath.Join(c.dir, "etc"),
		"--system-config=" + filepath.Join(c.dir, "usr-lib"),
	}, args...))
	err := root.ExecuteContext(context.Background())
	return cliRun{Stdout: out.String(), Stderr: errb.String(), Err: err}
}

// pods lists the pod directories of the installation, in any state.
func (c *cliInstall) pods() []string {
	dirs, _ := filepath.Glob(filepath.Join(c.data(), "pods", "*", "*"))
	return dirs
}

// cliAssertOneLine checks that a refusal is an error whose message, as the
// user sees it, is one line naming every fragment.
func cliAssertOneLine(t *testing.T, args []string, r cliRun, fragments ...string) {
	t.Helper()
	if r.Err == nil {
		t.Fatalf("orbit %q succeeded; stdout %q", args, r.Stdout)
	}
	msg := oneLine(r.Err, false)
	if strings.Contains(msg, "\n") {
		t.Errorf("orbit %q: error is not one line: %q", args, msg)
	}
	for _, f := range fragments {
		if !strings.Contains(msg, f) {
			t.Errorf("orbit %q: error %q does not name %q", args, msg, f)
		}
	}
}

// A pod-making command line that is wrong is refused in one line that
// names the mistake, as an invalid-input error, before a pod is made or
// anything is fetched (no image given here exists).
func TestCLIRunAndPrepareRefuseBadLines(t *testing.T) {
	c := newCLIInstall(t)
	pmFile := filepath.Join(c.dir, "pod.json")
	if err := os.WriteFile(pmFile, []byte(`{"acKind":"PodManifest","acVersion":"0.8.11","apps":[]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args      []string
		fragments []string
	}{
		{[]string{}, []string{"needs an IMAGE"}},
		{[]string{"--stage1-name=fly", "--stage1-hash=sha512-00", "a.aci"}, []string{"at most one", "--stage1-hash"}},
		{[]string{"--pull-policy=sometimes", "a.aci"}, []string{"sometimes"}},
		{[]string{"--store-only", "--no-store", "a.aci"}, []string{"--store-only", "--no-store"}},
		{[]string{"--stage1-name=fly", "--private-users", "a.aci"}, []string{"--private-users", "fly"}},
		{[]string{"--pod-manifest=" + pmFile, "a.aci"}, []string{"--pod-manifest", "cannot be used together"}},
		{[]string{"--pod-manifest=" + pmFile, "--volume=v,kind=empty"}, []string{"--volume", "--pod-manifest"}},
		{[]string{"--exec=/bin/true", "a.aci"}, []string{"--exec", "one app"}},
		{[]string{"--name=x", "a.aci"}, []string{"--name"}},
		{[]string{"--memory=lots", "a.aci"}, []string{"lots"}},
		{[]string{"--caps-retain=CAP_KILL", "--caps-remove=CAP_CHOWN", "a.aci"}, []string{"caps"}},
		{[]string{"--stage1-name=fly", "a.aci", "---", "b.aci"}, []string{"fly", "exactly one app"}},
		{[]string{"a.aci", "--mount=volume=data,target=/data"}, []string{"data", "--volume"}},
		{[]string{"--volume=bad name!", "a.aci"}, []string{"--volume"}},
		{[]string{"--port=http", "a.aci"}, []string{"--port", "http"}},
		{[]string{"a.aci", "--no-such-app-flag"}, []string{"no-such-app-flag"}},
	}
	for _, cmd := range []string{"run", "prepare"} {
		for _, tc := range cases {
			args := append([]string{cmd, "--insecure-options=image"}, tc.args...)
			r := c.run(args...)
			cliAssertOneLine(t, args, r, tc.fragments...)
			if r.Err != nil && !errors.Is(r.Err, errdefs.ErrInvalid) && !strings.Contains(r.Err.Error(), "flag") {
				t.Errorf("orbit %q: %v is not an invalid-input error", args, r.Err)
			}
		}
	}
	for _, cmd := range []string{"run", "prepare"} {
		r := c.run(cmd, "--pod-manifest="+filepath.Join(c.dir, "missing.json"))
		cliAssertOneLine(t, nil, r, "--pod-manifest", "missing.json")
		if !errors.Is(r.Err, fs.ErrNotExist) {
			t.Errorf("%s of a missing pod manifest: %v, want not exist", cmd, r.Err)
		}
	}
	if pods := c.pods(); len(pods) != 0 {
		t.Errorf("refused command lines left pods: %v", pods)
	}
	if _, err := os.Stat(filepath.Join(c.data(), "cas")); err == nil {
		t.Errorf("a refused command line opened the image store")
	}
}

// Flags only `orbit run` has (how stage1 runs the pod) are checked before
// anything else too.
func TestCLIRunChecksStage1Flags(t *testing.T) {
	c := newCLIInstall(t)
	for _, tc := range []struct {
		args      []string
		fragments []string
	}{
		{[]string{"--hostname=bad_name", "a.aci"}, []string{"bad_name"}},
		{[]string{"--hostname=", "a.aci"}, []string{"host"}},
		{[]string{"--net=", "a.aci"}, []string{"--net"}},
		{[]string{"--stage1-name=fly", "--net=default", "a.aci"}, []string{"default"}},
		{[]string{"--dns=not-an-ip", "a.aci"}, []string{"not-an-ip"}},
		{[]string{"--", "a.aci"}, []string{`"--" must follow an image`}},
	} {
		args := append([]string{"run", "--insecure-options=image"}, tc.args...)
		r := c.run(args...)
		cliAssertOneLine(t, args, r, tc.fragments...)
		if !errors.Is(r.Err, errdefs.ErrInvalid) {
			t.Errorf("orbit %q: %v is not an invalid-input error", args, r.Err)
		}
	}
	if pods := c.pods(); len(pods) != 0 {
		t.Errorf("refused command lines left pods: %v", pods)
	}
}

// Mistakes in the global flags and in the command tree itself are one line
// pointing at the help of the command concerned.
func TestCLIUsageErrors(t *testing.T) {
	c := newCLIInstall(t)
	for _, tc := range []struct {
		args      []string
		fragments []string
		invalid   bool // wraps errdefs.ErrInvalid
	}{
		{[]string{"--no-such-flag"}, []string{"unknown flag: --no-such-flag", "see 'orbit --help'"}, false},
		{[]string{"run", "--stage1-name"}, []string{"flag needs an argument", "see 'orbit run --help'"}, false},
		{[]string{"--insecure-options=bogus", "version"}, []string{"bogus"}, false},
		{[]string{"image", "lis"}, []string{`unknown command "lis"`, `did you mean "list"?`, "see 'orbit image --help'"}, true},
		{[]string{"image", "nothing-like-it"}, []string{`unknown command "nothing-like-it"`}, true},
		{[]string{"list", "--format=xml"}, []string{"--format=xml"}, true},
		{[]string{"status", "--format=yaml", "0000"}, []string{"--format=yaml"}, true},
		{[]string{"status", "--wait=soon", "0000"}, []string{"--wait", "duration"}, false},
		{[]string{"status", "00000000-0000-0000-0000-000000000000"}, []string{"not found"}, false},
		{[]string{"status", "a/b"}, []string{"a/b"}, true},
		{[]string{"gc", "--grace-period=-1s"}, []string{"grace-period"}, true},
		{[]string{"gc", "--expire-prepared=-1h"}, []string{"expire-prepared"}, true},
		{[]string{"image", "gc", "--grace-period=-1s"}, []string{"grace-period"}, true},
		{[]string{"trust"}, []string{"--prefix", "--root"}, true},
		{[]string{"trust", "key.asc"}, []string{"implicit trust", "--root"}, true},
		{[]string{"trust", "--root", "--prefix=example.com", "key.asc"}, []string{"--prefix and --root"}, true},
		{[]string{"version", "extra"}, []string{"extra"}, false},
		{[]string{"list", "extra"}, []string{"extra"}, false},
	} {
		r := c.run(tc.args...)
		cliAssertOneLine(t, tc.args, r, tc.fragments...)
		if tc.invalid && !errors.Is(r.Err, errdefs.ErrInvalid) {
			t.Errorf("orbit %q: %v is not an invalid-input error", tc.args, r.Err)
		}
	}
	if r := c.run("status", "00000000-0000-0000-0000-000000000000"); !errors.Is(r.Err, errdefs.ErrNotFound) {
		t.Errorf("status of a missing pod: %v, want not found", r.Err)
	}
}

// Every command of the tree parses its own flags: `--help` works for each,
// and every flag is documented unless it is a deprecated spelling.
func TestCLIEveryCommandParsesItsFlags(t *testing.T) {
	c := newCLIInstall(t)
	var walk func(cmd *cobra.Command, path []string)
	n := 0
	walk = func(cmd *cobra.Command, path []string) {
		n++
		r := c.run(append(append([]string(nil), path...), "--help")...)
		if r.Err != nil || !strings.Contains(r.Stdout, "Usage:") {
			t.Errorf("orbit %s --help: %v\n%s", strings.Join(path, " "), r.Err, r.Stdout)
		}
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Usage == "" && f.Deprecated == "" && !f.Hidden && f.Name != "help" {
				t.Errorf("orbit %s: --%s has no usage text", strings.Join(path, " "), f.Name)
			}
		})
		for _, sub := range cmd.Commands() {
			walk(sub, append(append([]string(nil), path...), sub.Name()))
		}
	}
	g := &globalOptions{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
	walk(newRootCommand(g), nil)
	if n < len(commandConstructors()) {
		t.Fatalf("walked %d commands, fewer than the %d constructors", n, len(commandConstructors()))
	}
}

// rkt's spellings work where unit files and scripts use them.
func TestCLIRktSpellings(t *testing.T) {
	// rkt's stage1 image names and file names mean orbit's flavours.
	for name, want := range map[string]builtin.Flavour{
		"coreos.com/rkt/stage1-fly:1.30.0": builtin.Fly,
		"fly":                              builtin.Fly,
		"nspawn":                           builtin.Nspawn,
		"":                                 defaultFlavour,
	} {
		if got := (&stage1Flags{name: name}).flavour(); got != want {
			t.Errorf("--stage1-name=%q: flavour %v, want %v", name, got, want)
		}
	}
	if got := (&stage1Flags{path: "s1.aci"}).flavour(); got != 0 {
		t.Errorf("--stage1-path: flavour %v, want unknown until resolved", got)
	}
	// The rkt fly name is the fly flavour before anything is fetched: a
	// two-app pod is refused as fly refuses it.
	c := newCLIInstall(t)
	r := c.run("run", "--insecure-options=image", "--stage1-name=coreos.com/rkt/stage1-fly:1.30.0", "a.aci", "---", "b.aci")
	cliAssertOneLine(t, nil, r, "fly", "exactly one app")

	// --store-only and --no-store are --pull-policy's old spellings.
	for _, tc := range []struct {
		policy            string
		storeOnly, noStor bool
		want              fetch.PullPolicy
	}{
		{"new", true, false, fetch.PullNever},
		{"new", false, true, fetch.PullUpdate},
		{"never", false, false, fetch.PullNever},
		{"update", false, false, fetch.PullUpdate},
		{"new", false, false, fetch.PullNew},
	} {
		got, err := pullPolicy(tc.policy, tc.storeOnly, tc.noStor)
		if err != nil || got != tc.want {
			t.Errorf("pullPolicy(%q, %v, %v) = %v, %v; want %v", tc.policy, tc.storeOnly, tc.noStor, got, err, tc.want)
		}
	}

	// --cap-retain and --cap-remove fold into --caps-retain/--caps-remove:
	// both given is the same conflict as with the new spellings.
	r = c.run("run", "--insecure-options=image", "--cap-retain=CAP_KILL", "--caps-remove=CAP_CHOWN", "a.aci")
	cliAssertOneLine(t, nil, r, "caps")
	flags := pflag.NewFlagSet("run", pflag.ContinueOnError)
	flags.SetOutput(io.Discard) // the deprecation notice
	var a appFlags
	addAppFlags(flags, &a)
	if err := flags.Parse([]string{"--cap-retain=CAP_KILL", "--cap-remove=CAP_CHOWN"}); err != nil {
		t.Fatal(err)
	}
	a.recordSet(flags)
	if !a.set["caps-retain"] || !a.set["caps-remove"] || len(a.capsRetain) != 1 || len(a.capsRemove) != 1 {
		t.Errorf("deprecated capability flags not folded: %+v", a)
	}

	// status --wait takes rkt's bare flag, a boolean or a duration.
	for _, tc := range []struct {
		in      string
		on      bool
		timeout time.Duration
	}{{"true", true, 0}, {"false", false, 0}, {"10s", true, 10 * time.Second}, {"0s", false, 0}} {
		var w waitFlag
		if err := w.Set(tc.in); err != nil || w.on != tc.on || w.timeout != tc.timeout {
			t.Errorf("--wait=%s: %+v %v", tc.in, w, err)
		}
	}
	var w waitFlag
	if err := w.Set("-1s"); err == nil {
		t.Errorf("--wait=-1s accepted")
	}
}

// The commands that only read work on an installation with nothing in it.
func TestCLIEmptyInstallation(t *testing.T) {
	c := newCLIInstall(t)
	r := c.run("version")
	if r.Err != nil || !strings.Contains(r.Stdout, "orbit Version: "+version) || !strings.Contains(r.Stdout, "appc Version: 0.8.11") {
		t.Fatalf("version: %+v", r)
	}
	if r := c.run("list"); r.Err != nil || !strings.HasPrefix(r.Stdout, "UUID") || strings.Count(r.Stdout, "\n") != 1 {
		t.Errorf("list: %+v", r)
	}
	if r := c.run("list", "--no-legend"); r.Err != nil || r.Stdout != "" {
		t.Errorf("list --no-legend: %+v", r)
	}
	if r := c.run("list", "--format=json"); r.Err != nil || strings.TrimSpace(r.Stdout) != "[]" {
		t.Errorf("list --format=json: %+v", r)
	}
	if r := c.run("gc", "--grace-period=0s"); r.Err != nil {
		t.Errorf("gc: %+v", r)
	}
	r = c.run("config")
	var cfg struct {
		Stage0 []map[string]any `json:"stage0"`
	}
	if r.Err != nil || json.Unmarshal([]byte(r.Stdout), &cfg) != nil || len(cfg.Stage0) != 1 || cfg.Stage0[0]["data"] != c.data() {
		t.Errorf("config: %+v", r)
	}
}

// execute's error line: the whole chain in one line; with --debug the
// types of the chain follow on lines of their own.
func TestOneLine(t *testing.T) {
	err := fmt.Errorf("pod x: %w", fmt.Errorf("first line\n\n  second line\n: %w", errdefs.ErrInvalid))
	if got := oneLine(err, false); strings.Contains(got, "\n") || !strings.Contains(got, "first line; second line") {
		t.Errorf("oneLine = %q", got)
	}
	got := oneLine(err, true)
	if lines := strings.Split(got, "\n"); len(lines) < 3 || !strings.Contains(got, "*fmt.wrapError") {
		t.Errorf("oneLine with debug = %q", got)
	}
	if got := foldLines("plain"); got != "plain" {
		t.Errorf("foldLines(plain) = %q", got)
	}
	var ee exitError
	if !errors.As(fmt.Errorf("run: %w", exitError{code: 3}), &ee) || ee.code != 3 || ee.Error() != "exit status 3" {
		t.Errorf("exitError: %+v", ee)
	}
}

// cliACI writes a small gzip-compressed ACI named name whose rootfs holds
// one file, for this machine's architecture.
func cliACI(t *testing.T, name string) string {
	t.Helper()
	_, arch, err := types.ToAppcOSArch(runtime.GOOS, runtime.GOARCH, "")
	if err != nil {
		t.Fatal(err)
	}
	m, err := json.Marshal(map[string]any{
		"acKind": "ImageManifest", "acVersion": "0.8.11", "name": name,
		"labels": []map[string]string{{"name": "os", "value": "linux"}, {"name": "arch", "value": arch}, {"name": "version", "value": "1.0"}},
		"app":    map[string]any{"exec": []string{"/bin/app"}, "user": "0", "group": "0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "app.aci")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, e := range []struct {
		name, body string
		dir        bool
	}{{"manifest", string(m), false}, {"rootfs", "", true}, {"rootfs/bin", "", true}, {"rootfs/bin/app", "#!/bin/sh\n", false}} {
		hdr := &tar.Header{Name: e.name, Mode: 0o755, Size: int64(len(e.body)), Typeflag: tar.TypeReg, ModTime: time.Now()}
		if e.dir {
			hdr.Typeflag, hdr.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// The commands around a pod that never runs work in-process: fetch,
// prepare (the built-in fly stage1 image written from this binary), list,
// status, cat-manifest, the image commands, rm and gc.
func TestCLIPreparedPodCommands(t *testing.T) {
	c := newCLIInstall(t)
	aci := cliACI(t, "example.com/unit")
	r := c.run("fetch", "--full", "--insecure-options=image", aci)
	id := strings.TrimSpace(r.Stdout)
	if r.Err != nil || !strings.HasPrefix(id, "sha512-") {
		t.Fatalf("fetch: %+v", r)
	}
	uuidFile := filepath.Join(c.dir, "uuid")
	r = c.run("prepare", "--insecure-options=image", "--stage1-name=fly", "--no-overlay", "--uuid-file-save="+uuidFile,
		"--set-env=FROM=flag", "--volume=data,kind=empty", "--port=http:8080", "example.com/unit", "--mount=volume=data,target=/data", "--", "arg")
	if r.Err != nil {
		t.Fatalf("prepare: %+v", r)
	}
	uuid := strings.TrimSpace(r.Stdout)
	if saved, _ := os.ReadFile(uuidFile); string(saved) != uuid {
		t.Fatalf("prepare printed %q, saved %q", uuid, saved)
	}
	if r := c.run("list", "--no-legend"); r.Err != nil || !strings.Contains(r.Stdout, uuid[:8]) || !strings.Contains(r.Stdout, "prepared") {
		t.Errorf("list: %+v", r)
	}
	var pods []map[string]any
	if r := c.run("list", "--format=json"); r.Err != nil || json.Unmarshal([]byte(r.Stdout), &pods) != nil || len(pods) != 1 || pods[0]["name"] != uuid {
		t.Errorf("list --format=json: %+v", r)
	}
	if r := c.run("list", "--full"); r.Err != nil || !strings.Contains(r.Stdout, uuid) || !strings.Contains(r.Stdout, id) {
		t.Errorf("list --full: %+v", r)
	}
	if r := c.run("status", uuid[:8]); r.Err != nil || !strings.Contains(r.Stdout, "state=prepared") {
		t.Errorf("status: %+v", r)
	}
	if r := c.run("status", "--format=json-pretty", uuid); r.Err != nil || !strings.Contains(r.Stdout, `"state": "prepared"`) {
		t.Errorf("status --format=json-pretty: %+v", r)
	}
	var pm struct {
		Apps []struct {
			Name string `json:"name"`
			App  struct {
				Exec []string `json:"exec"`
			} `json:"app"`
		} `json:"apps"`
		Ports []map[string]any `json:"ports"`
	}
	r = c.run("cat-manifest", "--uuid-file="+uuidFile)
	if r.Err != nil || json.Unmarshal([]byte(r.Stdout), &pm) != nil || len(pm.Apps) != 1 || pm.Apps[0].Name != "unit" ||
		strings.Join(pm.Apps[0].App.Exec, " ") != "/bin/app arg" || len(pm.Ports) != 1 {
		t.Errorf("cat-manifest: %+v\n%+v", r, pm)
	}
	if r := c.run("image", "list", "--no-legend"); r.Err != nil || !strings.Contains(r.Stdout, "example.com/unit") || !strings.Contains(r.Stdout, "orbit.dev/stage1-fly") {
		t.Errorf("image list: %+v", r)
	}
	if r := c.run("image", "cat-manifest", "example.com/unit"); r.Err != nil || !strings.Contains(r.Stdout, `"example.com/unit"`) {
		t.Errorf("image cat-manifest: %+v", r)
	}
	// The prepared pod holds its images against image gc.
	if r := c.run("image", "gc", "--grace-period=0s"); r.Err != nil {
		t.Errorf("image gc: %+v", r)
	}
	if r := c.run("image", "list", "--no-legend"); !strings.Contains(r.Stdout, "example.com/unit") {
		t.Errorf("image gc removed an image a prepared pod uses: %+v", r)
	}
	// rm by the saved UUID; then nothing is left to list.
	if r := c.run("rm", "--uuid-file="+uuidFile); r.Err != nil {
		t.Fatalf("rm: %+v", r)
	}
	if r := c.run("list", "--no-legend"); r.Err != nil || r.Stdout != "" {
		t.Errorf("list after rm: %+v", r)
	}
	if r := c.run("status", uuid); !errors.Is(r.Err, errdefs.ErrNotFound) {
		t.Errorf("status after rm: %+v", r)
	}
	if r := c.run("image", "rm", "example.com/unit"); r.Err != nil {
		t.Errorf("image rm: %+v", r)
	}
	if r := c.run("image", "list", "--no-legend"); strings.Contains(r.Stdout, "example.com/unit") {
		t.Errorf("image rm left the image: %+v", r)
	}
	if r := c.run("gc", "--grace-period=0s", "--expire-prepared=0s"); r.Err != nil {
		t.Errorf("gc: %+v", r)
	}
}
