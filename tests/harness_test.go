// Package tests holds orbit's functional tests: they build the real binary
// and drive it as root against real filesystems, mounts and servers.
package tests

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"
)

// binary is the orbit binary under test, built once by TestMain unless
// ORBIT_BINARY names one.
var binary string

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		// The one prerequisite checked before any test: see tests/README.md.
		if inCI() {
			fmt.Fprintln(os.Stderr, "functional tests need root, and CI=true does not allow skipping them")
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "SKIP: functional tests need root; none ran")
		os.Exit(0)
	}
	binary = os.Getenv("ORBIT_BINARY")
	cleanup := func() {}
	if binary == "" {
		dir, err := os.MkdirTemp("", "orbit-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cleanup = func() { os.RemoveAll(dir) }
		binary = filepath.Join(dir, "orbit")
		build := exec.Command("go", "build", "-o", binary, "../cmd/orbit")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building orbit:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// inCI reports whether the tests run under CI (CI=true), where a missing
// prerequisite fails the run instead of skipping tests.
func inCI() bool { return os.Getenv("CI") == "true" }

// require checks a prerequisite the way every functional test does: a
// missing one fails the test under CI=true and skips it otherwise.
func require(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	msg := fmt.Sprintf(format, args...)
	if inCI() {
		t.Fatalf("missing prerequisite (CI=true does not allow skipping): %s", msg)
	}
	t.Skipf("missing prerequisite: %s", msg)
}

// requireTool returns the path of a program the test needs, named with the
// Debian package that has it.
func requireTool(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	require(t, err == nil, "%s (Debian package %s) is needed", name, pkg)
	return path
}

// appcArch is the host's architecture as appc's arch label spells it.
func appcArch() string {
	_, arch, err := types.ToAppcOSArch(runtime.GOOS, runtime.GOARCH, "")
	if err != nil {
		panic(err)
	}
	return arch
}

// env is one isolated orbit installation: its own data and config dirs.
type env struct {
	t         testing.TB
	Dir       string // --dir
	LocalCfg  string // --local-config
	SystemCfg string // --system-config
	ExtraEnv  []string
	// NetNS, when set, names a network namespace the test made (ip netns
	// add): every orbit command runs in it (nsenter --net), and `run` and
	// `run-prepared` get the flavour's default network. Unset, they get
	// --net=host unless a test gives --net itself, so no test makes
	// veths, routes or firewall rules in the machine's own namespace.
	NetNS string
}

func newEnv(t testing.TB) *env {
	t.Helper()
	root := t.TempDir()
	e := &env{
		t:         t,
		Dir:       filepath.Join(root, "data"),
		LocalCfg:  filepath.Join(root, "etc"),
		SystemCfg: filepath.Join(root, "usr-lib"),
	}
	for _, d := range []string{e.Dir, e.LocalCfg, e.SystemCfg} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { e.teardown() })
	return e
}

// teardown stops what the env's pods left behind, so TempDir removal works:
// running pods are killed, then everything is collected.
func (e *env) teardown() {
	out, _ := e.command("list", "--format=json").Output()
	var pods []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	}
	json.Unmarshal(out, &pods)
	for _, p := range pods {
		if p.State == "running" {
			e.runQuiet("stop", "--force", p.Name)
		}
	}
	for _, p := range pods {
		if p.State == "running" {
			e.command("status", "--wait", p.Name).Run()
		}
	}
	e.runQuiet("gc", "--grace-period=0s", "--expire-prepared=0s")
	unmountBelow(e.Dir)
}

// unmountBelow lazily unmounts every mount point below dir, deepest first.
func unmountBelow(dir string) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		exec.Command("umount", "-l", points[i]).Run()
	}
}

// args prefixes the env's global flags, and gives the commands that start
// a pod (`run`, `run-prepared`, `app sandbox`) --net=host unless the env
// runs in a namespace of the test's (NetNS), the command line sets --net,
// or it names a third-party stage1.
func (e *env) args(args ...string) []string {
	if e.NetNS == "" && !givesNet(args) && !namesThirdPartyStage1(args) {
		switch {
		case len(args) > 0 && (args[0] == "run" || args[0] == "run-prepared"):
			args = append([]string{args[0], "--net=host"}, args[1:]...)
		case len(args) > 1 && args[0] == "app" && args[1] == "sandbox":
			args = append([]string{"app", "sandbox", "--net=host"}, args[2:]...)
		}
	}
	return append([]string{"--dir=" + e.Dir, "--local-config=" + e.LocalCfg, "--system-config=" + e.SystemCfg}, args...)
}

// result is what one orbit invocation did.
type result struct {
	Stdout, Stderr string
	Code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// run runs orbit with the env's flags and returns what it did.
func (e *env) run(args ...string) result {
	e.t.Helper()
	return e.runIn(nil, args...)
}

func (e *env) runIn(stdin io.Reader, args ...string) result {
	e.t.Helper()
	cmd := e.command(args...)
	cmd.Stdin = stdin
	return runCommand(e.t, cmd)
}

// runCommand runs an orbit command to its end and returns what it did;
// only a failure to run it at all fails the test.
func runCommand(t testing.TB, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running %v: %v", cmd.Args, err)
		}
		code = ee.ExitCode()
	}
	return result{Stdout: out.String(), Stderr: errb.String(), Code: code}
}

func (e *env) runQuiet(args ...string) {
	cmd := e.command(args...)
	cmd.Run()
}

// command returns an unstarted orbit invocation.
func (e *env) command(args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if e.NetNS != "" {
		cmd = exec.Command("nsenter", append([]string{"--net=/run/netns/" + e.NetNS, binary}, e.args(args...)...)...)
	} else {
		cmd = exec.Command(binary, e.args(args...)...)
	}
	cmd.Env = append(os.Environ(), e.ExtraEnv...)
	return cmd
}

// namesThirdPartyStage1 reports whether a command line names a stage1 image
// that is not one of orbit's flavours, which decides its network itself
// (the tests' own are scripts that make none).
func namesThirdPartyStage1(args []string) bool {
	for _, a := range args {
		for _, f := range []string{"--stage1-path", "--stage1-url", "--stage1-hash", "--stage1-from-dir"} {
			if a == f || strings.HasPrefix(a, f+"=") {
				return true
			}
		}
		if a == "--" {
			break
		}
	}
	return false
}

// givesNet reports whether a command line sets --net.
func givesNet(args []string) bool {
	for _, a := range args {
		if a == "--net" || strings.HasPrefix(a, "--net=") {
			return true
		}
		if a == "--" {
			break
		}
	}
	return false
}

// mustRun runs orbit and fails the test unless it exits 0.
func (e *env) mustRun(args ...string) result {
	e.t.Helper()
	r := e.run(args...)
	if r.Code != 0 {
		e.t.Fatalf("orbit %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// busyboxRootfs makes a root filesystem holding busybox-static and links
// for its applets, plus a minimal /etc/passwd and /etc/group.
func busyboxRootfs(t testing.TB) string {
	t.Helper()
	bb := requireTool(t, "busybox", "busybox-static")
	root := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev", "root", "home/user"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "echo", "cat", "ls", "id", "env", "pwd", "sleep", "true", "false", "touch", "mkdir", "hostname", "ps", "grep", "stat", "kill", "head", "test", "dd", "wc", "mount", "sort", "chown", "tail", "tr", "seq", "rm", "cp"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n")
	writeFile(t, filepath.Join(root, "etc/group"), "root:x:0:\nuser:x:1000:\nextra:x:2000:user\n")
	return root
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// imageManifest returns a minimal appc image manifest for a busybox app.
func imageManifest(name string, exec ...string) map[string]any {
	if len(exec) == 0 {
		exec = []string{"/bin/sh", "-c", "echo hello from " + name}
	}
	return map[string]any{
		"acKind":    "ImageManifest",
		"acVersion": "0.8.11",
		"name":      name,
		"labels": []map[string]string{
			{"name": "os", "value": "linux"},
			{"name": "arch", "value": appcArch()},
		},
		"app": map[string]any{
			"exec":  exec,
			"user":  "0",
			"group": "0",
		},
	}
}

// writeACI writes rootfs and manifest as a gzip-compressed ACI, made with
// archive/tar directly so the tests do not depend on orbit's own writer.
func writeACI(t testing.TB, path, rootfs string, manifest map[string]any) string {
	t.Helper()
	m, err := json.Marshal(manifest)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	now := time.Now()
	if err := tw.WriteHeader(&tar.Header{Name: "manifest", Mode: 0o644, Size: int64(len(m)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write(m)
	if rootfs != "" {
		err = filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(rootfs, p)
			name := "rootfs"
			if rel != "." {
				name = "rootfs/" + rel
			}
			info, err := os.Lstat(p)
			if err != nil {
				return err
			}
			link := ""
			if info.Mode()&fs.ModeSymlink != 0 {
				link, _ = os.Readlink(p)
			}
			hdr, err := tar.FileInfoHeader(info, link)
			if err != nil {
				return err
			}
			hdr.Name = name
			hdr.Uname, hdr.Gname = "", ""
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if info.Mode().IsRegular() {
				src, err := os.Open(p)
				if err != nil {
					return err
				}
				defer src.Close()
				_, err = io.Copy(tw, src)
				return err
			}
			return nil
		})
		if err != nil {
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

// busyboxACI makes a busybox ACI named name whose app runs exec.
func busyboxACI(t testing.TB, name string, exec ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), strings.ReplaceAll(name, "/", "_")+".aci")
	return writeACI(t, path, busyboxRootfs(t), imageManifest(name, exec...))
}
