package tests

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// cliPods returns the pods `orbit list --format=json` shows.
func cliPods(t *testing.T, e *env) []map[string]any {
	t.Helper()
	r := e.run("list", "--format=json")
	if r.Code != 0 {
		t.Fatalf("list: %s", r)
	}
	var pods []map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &pods); err != nil {
		t.Fatalf("list --format=json: %v: %q", err, r.Stdout)
	}
	return pods
}

// cliImages returns the images `orbit image list --format=json` shows.
func cliImages(t *testing.T, e *env) []map[string]any {
	t.Helper()
	r := e.run("image", "list", "--format=json")
	if r.Code != 0 {
		t.Fatalf("image list: %s", r)
	}
	var imgs []map[string]any
	if err := json.Unmarshal([]byte(r.Stdout), &imgs); err != nil {
		t.Fatalf("image list --format=json: %v: %q", err, r.Stdout)
	}
	return imgs
}

// cliRefused checks a refusal: a non-zero exit, exactly one stderr line
// naming every fragment, and no pod left behind.
func cliRefused(t *testing.T, e *env, r result, fragments ...string) {
	t.Helper()
	if r.Code == 0 {
		t.Fatalf("orbit accepted it, want a refusal: %s", r)
	}
	lines := strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "orbit: ") {
		t.Fatalf("want one stderr line: %s", r)
	}
	for _, f := range fragments {
		if !strings.Contains(lines[0], f) {
			t.Fatalf("error %q does not mention %q", lines[0], f)
		}
	}
	if pods := cliPods(t, e); len(pods) != 0 {
		t.Fatalf("a refused command left pods behind: %v", pods)
	}
}

// cliMountsBelow lists the mount points of this mount namespace at or
// below dir.
func cliMountsBelow(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

// cliFlavours are the built-in flavours the --dir tests run under.
func cliFlavours(t *testing.T) map[string][]string {
	t.Helper()
	requireNspawn(t)
	return map[string][]string{
		"nspawn": {"--stage1-name=nspawn"},
		"fly":    {"--stage1-name=fly"},
	}
}

// cliRunAndCollect runs an image, collects the pod and checks that
// nothing is left: no pod, no mount below real, no pod directory.
func cliRunAndCollect(t *testing.T, e *env, real string, do func(args ...string) result, aci string, stage1 []string) {
	t.Helper()
	args := append(append([]string{"run", "--net=host", "--insecure-options=image"}, stage1...), aci)
	if r := do(args...); r.Code != 0 || !strings.Contains(r.Stdout, "hello from example.com/dir") {
		t.Fatalf("run: %s", r)
	}
	if r := do("gc", "--grace-period=0s"); r.Code != 0 {
		t.Fatalf("gc: %s", r)
	}
	if pods := cliPods(t, e); len(pods) != 0 {
		t.Fatalf("gc left pods: %v", pods)
	}
	if m := cliMountsBelow(t, real); len(m) != 0 {
		t.Fatalf("mounts left below %s: %v", real, m)
	}
	for _, d := range []string{"run", "exited-garbage", "garbage"} {
		entries, _ := os.ReadDir(filepath.Join(real, "pods", d))
		if len(entries) != 0 {
			t.Fatalf("pods/%s still holds %d pods", d, len(entries))
		}
	}
}

func TestHostileCLIDirThroughSymlink(t *testing.T) {
	t.Parallel()
	aci := busyboxACI(t, "example.com/dir")
	for name, stage1 := range cliFlavours(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // its own env
			e := newEnv(t)
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "real", "data"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("real", filepath.Join(root, "link")); err != nil {
				t.Fatal(err)
			}
			real := filepath.Join(root, "real", "data")
			e.Dir = filepath.Join(root, "link", "data")
			t.Cleanup(func() { unmountBelow(real) })
			cliRunAndCollect(t, e, real, e.run, aci, stage1)
		})
	}
}

func TestHostileCLIRelativeDir(t *testing.T) {
	t.Parallel()
	aci := busyboxACI(t, "example.com/dir")
	for name, stage1 := range cliFlavours(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // its own env
			e := newEnv(t)
			cwd := t.TempDir()
			real := filepath.Join(cwd, "data")
			// Everything the test itself runs uses the absolute path; the
			// commands under test get a relative one.
			e.Dir = real
			t.Cleanup(func() { unmountBelow(real) })
			relative := func(args ...string) result {
				cmd := exec.Command(binary, append([]string{"--dir=data", "--local-config=" + e.LocalCfg, "--system-config=" + e.SystemCfg}, args...)...)
				cmd.Dir = cwd
				return runCommand(t, cmd)
			}
			cliRunAndCollect(t, e, real, relative, aci, stage1)
		})
	}
}

// TestHostileCLIGCNeverDeletesThroughMount: a host directory mounted below
// a pod, with --dir reached through a symlink, survives gc.
func TestHostileCLIGCNeverDeletesThroughMount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	root := t.TempDir()
	real := filepath.Join(root, "real")
	if err := os.MkdirAll(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	e.Dir = filepath.Join(root, "link")
	aci := busyboxACI(t, "example.com/mnt")
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	e.mustRun("prepare", "--insecure-options=image", "--stage1-name=fly", "--uuid-file-save="+uuidFile, aci)
	data, _ := os.ReadFile(uuidFile)
	uuid := strings.TrimSpace(string(data))
	host := t.TempDir()
	writeFile(t, filepath.Join(host, "precious"), "keep me")
	target := filepath.Join(real, "pods", "prepared", uuid, "bind")
	if err := os.MkdirAll(target, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(host, target, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
	// gc may move the pod, mount and all, and mountinfo names the real
	// paths, which the env's teardown (through the link) does not match.
	t.Cleanup(func() { unmountBelow(real) })
	e.run("gc", "--grace-period=0s", "--expire-prepared=0s")
	if got, err := os.ReadFile(filepath.Join(host, "precious")); err != nil || string(got) != "keep me" {
		t.Fatalf("gc deleted a host file through a mount below the pod: %q %v", got, err)
	}
}

// cliPodManifest writes a pod manifest whose apps are the given runtime
// apps.
func cliPodManifest(t *testing.T, apps []map[string]any, extra map[string]any) string {
	t.Helper()
	pm := map[string]any{"acKind": "PodManifest", "acVersion": "0.8.11", "apps": apps}
	for k, v := range extra {
		pm[k] = v
	}
	data, err := json.Marshal(pm)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pod.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHostileCLIRefusesBadRunLines(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/bad")
	aci2 := busyboxACI(t, "example.com/bad2")
	capsManifest := cliPodManifest(t, []map[string]any{{
		"name":  "app",
		"image": map[string]any{"name": "example.com/bad"},
		"app": map[string]any{
			"exec": []string{"/bin/true"}, "user": "0", "group": "0",
			"isolators": []map[string]any{{"name": "os/linux/capabilities-retain-set", "value": map[string]any{"set": []string{"CAP_BOGUS"}}}},
		},
	}}, nil)
	flyTwoManifest := cliPodManifest(t, []map[string]any{
		{"name": "a", "image": map[string]any{"name": "example.com/bad"}},
		{"name": "b", "image": map[string]any{"name": "example.com/bad2"}},
	}, nil)
	noApps := cliPodManifest(t, []map[string]any{}, nil)
	badMount := cliPodManifest(t, []map[string]any{{
		"name": "a", "image": map[string]any{"name": "example.com/bad"},
		"mounts": []map[string]any{{"volume": "nothere", "path": "/x"}},
	}}, nil)
	run := []string{"run", "--insecure-options=image"}
	cases := []struct {
		name     string
		args     []string
		fragment []string
	}{
		{"hostname underscore", []string{"--hostname=bad_host", aci}, []string{"--hostname", "bad_host"}},
		{"hostname leading hyphen", []string{"--hostname=-bad", aci}, []string{"--hostname"}},
		{"hostname too long", []string{"--hostname=" + strings.Repeat("a", 70), aci}, []string{"--hostname"}},
		{"hostname empty", []string{"--hostname=", aci}, []string{"--hostname"}},
		{"net unknown for nspawn", []string{"--net=nosuchnet", aci}, []string{"--net", "nosuchnet"}},
		{"net malformed", []string{"--net=bad name!", aci}, []string{"--net"}},
		{"net unknown for fly", []string{"--stage1-name=fly", "--net=mynet", aci}, []string{"--net", "mynet"}},
		{"mount of a missing volume", []string{aci, "--mount=volume=nothere,target=/x"}, []string{"nothere"}},
		{"caps-retain unknown", []string{"--caps-retain=CAP_BOGUS", aci}, []string{"CAP_BOGUS"}},
		{"caps-remove unknown", []string{"--caps-remove=bogus", aci}, []string{"BOGUS"}},
		{"pod manifest unknown capability", []string{"--pod-manifest=" + capsManifest}, []string{"CAP_BOGUS"}},
		{"two apps under fly", []string{"--stage1-name=fly", aci, aci2}, []string{"fly", "one app"}},
		{"pod manifest two apps under fly", []string{"--stage1-name=fly", "--pod-manifest=" + flyTwoManifest}, []string{"fly", "one app"}},
		{"pod manifest without apps", []string{"--pod-manifest=" + noApps}, []string{"no apps"}},
		{"pod manifest mount of a missing volume", []string{"--pod-manifest=" + badMount}, []string{"nothere"}},
		{"memory -1", []string{"--memory=-1", aci}, []string{"--memory"}},
		{"memory 0", []string{"--memory=0", aci}, []string{"--memory"}},
		{"memory empty", []string{"--memory=", aci}, []string{"--memory"}},
		{"memory one byte", []string{"--memory=1", aci}, []string{"--memory"}},
		{"memory overflow", []string{"--memory=99999999999999999999G", aci}, []string{"--memory"}},
		{"memory per app", []string{aci, "--memory=0"}, []string{"--memory"}},
		{"cpu -1", []string{"--cpu=-1", aci}, []string{"--cpu"}},
		{"cpu 0", []string{"--cpu=0", aci}, []string{"--cpu"}},
		{"cpu empty", []string{"--cpu=", aci}, []string{"--cpu"}},
		{"cpu overflow", []string{"--cpu=99999999999999999999", aci}, []string{"--cpu"}},
		{"user empty", []string{"--user=", aci}, []string{"--user"}},
		{"group empty", []string{aci, "--group="}, []string{"--group"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.run(append(append([]string(nil), run...), c.args...)...)
			cliRefused(t, e, r, c.fragment...)
			if imgs := cliImages(t, e); len(imgs) != 0 {
				t.Fatalf("a refused command line fetched images: %v", imgs)
			}
		})
	}
	// The same values are refused by prepare.
	r := e.run("prepare", "--insecure-options=image", "--memory=0", aci)
	cliRefused(t, e, r, "--memory")
}

func TestHostileCLIPodManifestSizeCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	path := filepath.Join(t.TempDir(), "big.json")
	// A valid manifest padded with a large annotation past 4 MiB.
	big := map[string]any{
		"acKind": "PodManifest", "acVersion": "0.8.11",
		"apps":        []map[string]any{{"name": "a", "image": map[string]any{"name": "example.com/x"}}},
		"annotations": []map[string]string{{"name": "example.com/pad", "value": strings.Repeat("x", 5<<20)}},
	}
	data, _ := json.Marshal(big)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	r := e.run("prepare", "--insecure-options=image", "--pod-manifest="+path)
	cliRefused(t, e, r, "--pod-manifest", "MiB")
}

func TestHostileCLIErrorsAreOneLine(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	malformed := filepath.Join(t.TempDir(), "pod.json")
	writeFile(t, malformed, "{\n  \"acKind\": \"PodManifest\",\n  \"acVersion\": \"0.8.11\",\n  \"apps\": [ ,\n  ]\n}\n")
	cliRefused(t, e, e.run("prepare", "--pod-manifest="+malformed), "--pod-manifest")
	cliRefused(t, e, e.run("image", "rm", "sha512-0123456789abcdef"), "sha512-0123456789abcdef")
	cliRefused(t, e, e.run("lst"), `unknown command "lst"`, `"list"`)
}

func TestHostileCLIRefusesSilentDefaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cwd := t.TempDir()
	cmd := exec.Command(binary, "--dir=", "--local-config="+e.LocalCfg, "--system-config="+e.SystemCfg, "image", "list")
	cmd.Dir = cwd
	r := runCommand(t, cmd)
	if r.Code == 0 || strings.Count(strings.TrimRight(r.Stderr, "\n"), "\n") != 0 || !strings.Contains(r.Stderr, "--dir") {
		t.Fatalf("--dir= not refused with one line: %s", r)
	}
	if entries, _ := os.ReadDir(cwd); len(entries) != 0 {
		t.Fatalf("--dir= created files in the working directory: %v", entries)
	}
	for _, args := range [][]string{
		{"gc", "--grace-period=-5m"},
		{"gc", "--expire-prepared=-1h"},
		{"image", "gc", "--grace-period=-1s"},
	} {
		cliRefused(t, e, e.run(args...), args[len(args)-1][:strings.Index(args[len(args)-1], "=")])
	}
}

// TestHostileCLIGCReportsFailedMove: a prepared pod that gc cannot move
// (another process holds it) is not reported as moved.
func TestHostileCLIGCReportsFailedMove(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/held")
	r := e.mustRun("prepare", "--insecure-options=image", "--stage1-name=fly", aci)
	uuid := strings.TrimSpace(r.Stdout)
	dir, err := os.Open(filepath.Join(e.Dir, "pods", "prepared", uuid))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(dir.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	r = e.run("gc", "--expire-prepared=0s")
	dir.Close()
	if strings.Contains(r.Stderr, "Moving expired prepared pod") {
		t.Fatalf("gc said it moved a pod it could not move: %s", r)
	}
	if _, err := os.Stat(filepath.Join(e.Dir, "pods", "prepared", uuid)); err != nil {
		t.Fatalf("the held pod moved: %v", err)
	}
	r = e.mustRun("gc", "--expire-prepared=0s")
	if !strings.Contains(r.Stderr, "Moving expired prepared pod") {
		t.Fatalf("gc did not report the move once the pod was free: %s", r)
	}
}
