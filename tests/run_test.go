package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// flyRun runs an image in the fly flavour without signature checks.
func (e *env) flyRun(args ...string) result {
	e.t.Helper()
	return e.run(append([]string{"run", "--insecure-options=image", "--stage1-name=fly"}, args...)...)
}

func TestRunFlyOutputAndExitStatus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/hello")
	r := e.flyRun(aci)
	if r.Code != 0 || !strings.Contains(r.Stdout, "hello from example.com/hello") {
		t.Fatalf("run: %s", r)
	}
	r = e.flyRun(aci, "--exec=/bin/sh", "--", "-c", "echo args:$0; exit 7", "zero")
	if r.Code != 7 || !strings.Contains(r.Stdout, "args:zero") {
		t.Fatalf("want exit 7 and the app's args: %s", r)
	}
	// Apps killed by a signal exit like a shell reports them.
	r = e.flyRun(aci, "--exec=/bin/sh", "--", "-c", "kill -TERM $$")
	if r.Code != 128+15 {
		t.Fatalf("want exit 143 for an app killed by SIGTERM: %s", r)
	}
}

func TestRunFlyEnvironmentUserAndWorkingDir(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := imageManifest("example.com/env", "/bin/sh", "-c", "echo name=$AC_APP_NAME path=$PATH foo=$FOO img=$IMG; id -u; id -g; id -G; pwd")
	m["app"].(map[string]any)["environment"] = []map[string]string{{"name": "IMG", "value": "fromimage"}, {"name": "FOO", "value": "image"}}
	m["app"].(map[string]any)["workingDirectory"] = "/home/user"
	aci := writeACI(t, filepath.Join(t.TempDir(), "env.aci"), busyboxRootfs(t), m)
	r := e.flyRun("--set-env=FOO=bar", aci, "--user=user", "--group=user", "--supplementary-gids=2000")
	if r.Code != 0 {
		t.Fatalf("run: %s", r)
	}
	for _, want := range []string{"name=env ", "path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "foo=bar", "img=fromimage", "\n1000\n1000\n", "/home/user\n"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.Stdout)
		}
	}
	if !regexp.MustCompile(`(?m)^1000 2000$|^2000 1000$`).MatchString(r.Stdout) {
		t.Errorf("supplementary groups not applied:\n%s", r.Stdout)
	}
}

func TestRunByIDNameFileAndURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/where", "/bin/echo", "ran")
	id := strings.TrimSpace(e.mustRun("fetch", "--full", "--insecure-options=image", aci).Stdout)
	if !regexp.MustCompile(`^sha512-[0-9a-f]{128}$`).MatchString(id) {
		t.Fatalf("fetch printed %q, want an image ID", id)
	}
	for _, ref := range []string{id, id[:20], "example.com/where", aci} {
		if r := e.flyRun(ref); r.Code != 0 || !strings.Contains(r.Stdout, "ran") {
			t.Fatalf("run %s: %s", ref, r)
		}
	}
	// Over HTTP on loopback.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(filepath.Dir(aci)))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	url := fmt.Sprintf("http://%s/%s", ln.Addr(), filepath.Base(aci))
	if r := e.flyRun(url); r.Code != 0 || !strings.Contains(r.Stdout, "ran") {
		t.Fatalf("run %s: %s", url, r)
	}
	// A name the store lacks, with fetching forbidden.
	r := e.flyRun("--pull-policy=never", "example.com/absent")
	if r.Code == 0 || !strings.Contains(r.Stderr, "example.com/absent") {
		t.Fatalf("want a clear error for a missing image: %s", r)
	}
}

func TestRunRefusesUnsignedWithoutInsecureOption(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/unsigned")
	r := e.run("run", "--stage1-name=fly", aci)
	if r.Code == 0 || !strings.Contains(r.Stderr, "--insecure-options=image") {
		t.Fatalf("want a refusal naming --insecure-options=image: %s", r)
	}
	if out := e.mustRun("list", "--no-legend").Stdout; strings.TrimSpace(out) != "" {
		t.Fatalf("a refused run left a pod: %q", out)
	}
}

func TestPrepareRunPreparedStatusList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/prep", "/bin/sh", "-c", "echo prepared-run; exit 3")
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	r := e.mustRun("prepare", "--insecure-options=image", "--stage1-name=fly", "--uuid-file-save="+uuidFile, aci)
	uuid := strings.TrimSpace(r.Stdout)
	saved, _ := os.ReadFile(uuidFile)
	if uuid == "" || string(saved) != uuid {
		t.Fatalf("prepare printed %q, saved %q", uuid, saved)
	}
	if out := e.mustRun("list", "--no-legend").Stdout; !strings.Contains(out, "prepared") || !strings.Contains(out, uuid[:8]) {
		t.Fatalf("list after prepare: %q", out)
	}
	r = e.run("run-prepared", uuid)
	if r.Code != 3 || !strings.Contains(r.Stdout, "prepared-run") {
		t.Fatalf("run-prepared: %s", r)
	}
	// It ran; it cannot run again.
	if r := e.run("run-prepared", uuid); r.Code == 0 || !strings.Contains(r.Stderr, "not prepared") {
		t.Fatalf("second run-prepared: %s", r)
	}
	st := e.mustRun("status", uuid[:8]).Stdout
	for _, want := range []string{"state=exited", "exited=true", "app-prep=3"} {
		if !strings.Contains(st, want) {
			t.Errorf("status lacks %q:\n%s", want, st)
		}
	}
	var js struct {
		Name  string `json:"name"`
		State string `json:"state"`
		Apps  []struct {
			Name     string `json:"name"`
			ExitCode *int   `json:"exit_code"`
			ImageID  string `json:"image_id"`
		} `json:"apps"`
	}
	if err := json.Unmarshal([]byte(e.mustRun("status", "--format=json", uuid).Stdout), &js); err != nil {
		t.Fatal(err)
	}
	if js.Name != uuid || js.State != "exited" || len(js.Apps) != 1 || js.Apps[0].ExitCode == nil || *js.Apps[0].ExitCode != 3 {
		t.Fatalf("status json: %+v", js)
	}
	var list []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(e.mustRun("list", "--format=json").Stdout), &list); err != nil || len(list) != 1 || list[0].Name != uuid {
		t.Fatalf("list json: %+v %v", list, err)
	}
	full := e.mustRun("list", "--full").Stdout
	if !strings.Contains(full, uuid) || !strings.Contains(full, js.Apps[0].ImageID) || !strings.HasPrefix(full, "UUID") {
		t.Fatalf("list --full: %q", full)
	}
	if pm := e.mustRun("cat-manifest", uuid).Stdout; !strings.Contains(pm, `"acKind": "PodManifest"`) {
		t.Fatalf("cat-manifest: %q", pm)
	}
}

func TestStatusWaitEnterStop(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/sleeper", "/bin/sh", "-c", "echo started; sleep 30")
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	cmd := e.command("run", "--insecure-options=image", "--stage1-name=fly", "--uuid-file-save="+uuidFile, aci)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	uuid := waitRunning(t, e, uuidFile)
	if r := e.run("enter", uuid, "/bin/sh", "-c", "echo inside; cat /proc/1/comm >/dev/null; pwd"); r.Code != 0 || !strings.Contains(r.Stdout, "inside") {
		t.Fatalf("enter: %s", r)
	}
	if r := e.run("enter", uuid, "/bin/sh", "-c", "exit 5"); r.Code != 5 {
		t.Fatalf("enter exit status: %s", r)
	}
	if r := e.run("rm", uuid); r.Code == 0 {
		t.Fatalf("rm of a running pod succeeded: %s", r)
	}
	waited := make(chan result, 1)
	go func() { waited <- e.run("status", "--wait", uuid) }()
	e.mustRun("stop", uuid)
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("orbit run exited 0 after its app was stopped")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("orbit run did not end after stop")
	}
	r := <-waited
	if !strings.Contains(r.Stdout, "state=exited") || !strings.Contains(r.Stdout, "app-sleeper=143") {
		t.Fatalf("status --wait: %s", r)
	}
	e.mustRun("rm", uuid)
	if out := e.mustRun("list", "--no-legend").Stdout; strings.TrimSpace(out) != "" {
		t.Fatalf("pod still listed after rm: %q", out)
	}
	assertNoMounts(t, e)
}

// waitRunning waits for a pod started with --uuid-file-save to be running.
func waitRunning(t *testing.T, e *env, uuidFile string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(uuidFile); err == nil && len(data) > 0 {
			uuid := strings.TrimSpace(string(data))
			if r := e.run("status", uuid); strings.Contains(r.Stdout, "state=running") && strings.Contains(r.Stdout, "pid=") {
				return uuid
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("pod did not start running")
	return ""
}

func assertNoMounts(t *testing.T, e *env) {
	t.Helper()
	data, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], e.Dir+"/") {
			t.Errorf("mount left behind: %s", f[4])
		}
	}
}

func TestGCGraceAndLeftovers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/gc", "/bin/true")
	e.mustRun("run", "--insecure-options=image", "--stage1-name=fly", aci)
	e.mustRun("gc") // marks, but the default grace period keeps it
	if out := e.mustRun("list", "--no-legend").Stdout; !strings.Contains(out, "exited garbage") {
		t.Fatalf("after gc with grace period: %q", out)
	}
	e.mustRun("gc", "--grace-period=0s")
	if out := e.mustRun("list", "--no-legend").Stdout; strings.TrimSpace(out) != "" {
		t.Fatalf("after gc: %q", out)
	}
	uuid := strings.TrimSpace(e.mustRun("prepare", "--insecure-options=image", "--stage1-name=fly", aci).Stdout)
	e.mustRun("gc", "--grace-period=0s")
	if out := e.mustRun("list", "--no-legend").Stdout; !strings.Contains(out, uuid[:8]) {
		t.Fatalf("gc removed a fresh prepared pod: %q", out)
	}
	e.mustRun("gc", "--grace-period=0s", "--expire-prepared=0s")
	if out := e.mustRun("list", "--no-legend").Stdout; strings.TrimSpace(out) != "" {
		t.Fatalf("expired prepared pod not collected: %q", out)
	}
	assertNoMounts(t, e)
}

func TestRunNoOverlay(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/copy", "/bin/sh", "-c", "echo written >/tmp/x; cat /tmp/x")
	r := e.flyRun("--no-overlay", aci)
	if r.Code != 0 || !strings.Contains(r.Stdout, "written") {
		t.Fatalf("run --no-overlay: %s", r)
	}
	// The app's write stayed in its pod: a second pod starts clean.
	r = e.flyRun(aci, "--exec=/bin/cat", "--", "/tmp/x")
	if r.Code == 0 {
		t.Fatalf("a write of one pod is visible in another: %s", r)
	}
}

func TestCommandErrorsAreOneLine(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	bad := writeACI(t, filepath.Join(t.TempDir(), "bad.aci"), busyboxRootfs(t), map[string]any{"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "Not A Valid Name"})
	aci := busyboxACI(t, "example.com/ok")
	p1 := strings.TrimSpace(e.mustRun("prepare", "--insecure-options=image", "--stage1-name=fly", aci).Stdout)
	var p2 string
	for {
		p2 = strings.TrimSpace(e.mustRun("prepare", "--insecure-options=image", "--stage1-name=fly", aci).Stdout)
		if p2[0] == p1[0] {
			break
		}
		e.mustRun("rm", p2)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"run", "--insecure-options=image", "--stage1-name=fly", "example.com/none", "--pull-policy=never"}, "example.com/none"},
		{[]string{"run", "--insecure-options=image", "--stage1-name=fly", bad}, "invalid"},
		{[]string{"run", "--insecure-options=image", "--stage1-name"}, "flag needs an argument"},
		{[]string{"run", "--insecure-options=image", "--stage1-name=nope-flavour", aci}, "nope-flavour"},
		{[]string{"status", "00000000-0000-0000-0000-000000000000"}, "not found"},
		{[]string{"status", p1[:1]}, "ambiguous"},
		{[]string{"run", "--insecure-options=bogus", aci}, "unknown insecure option"},
		{[]string{"list", "--format=xml"}, "--format=xml"},
		{[]string{"run"}, "needs an IMAGE"},
	}
	for _, c := range cases {
		r := e.run(c.args...)
		if r.Code == 0 {
			t.Errorf("orbit %v succeeded: %s", c.args, r)
			continue
		}
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		last := lines[len(lines)-1]
		if !strings.Contains(last, c.want) || !strings.HasPrefix(last, "orbit: ") {
			t.Errorf("orbit %v: want one line naming %q, got %q", c.args, c.want, r.Stderr)
		}
	}
}

func TestConcurrentRunsAndGC(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/many", "/bin/sh", "-c", "echo $AC_APP_NAME; sleep 0.2")
	e.mustRun("fetch", "--full", "--insecure-options=image", aci)
	// Import the stage1 image once so the runs race on pods, not on it.
	e.mustRun("run", "--insecure-options=image", "--stage1-name=fly", "example.com/many")
	stop := make(chan struct{})
	var gcErr error
	var gcWG sync.WaitGroup
	gcWG.Add(1)
	go func() {
		defer gcWG.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if r := e.run("gc", "--grace-period=0s"); r.Code != 0 {
				gcErr = fmt.Errorf("gc: %s", r)
				return
			}
			if r := e.run("image", "gc"); r.Code != 0 {
				gcErr = fmt.Errorf("image gc: %s", r)
				return
			}
		}
	}()
	var wg sync.WaitGroup
	results := make([]result, 10)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			results[i] = e.run("run", "--insecure-options=image", "--stage1-name=fly", "example.com/many")
		}(i)
	}
	wg.Wait()
	close(stop)
	gcWG.Wait()
	if gcErr != nil {
		t.Fatal(gcErr)
	}
	for i, r := range results {
		if r.Code != 0 || !strings.Contains(r.Stdout, "many") {
			t.Errorf("run %d: %s", i, r)
		}
	}
	e.mustRun("gc", "--grace-period=0s")
	if out := e.mustRun("list", "--no-legend").Stdout; strings.TrimSpace(out) != "" {
		t.Fatalf("pods left: %q", out)
	}
	assertNoMounts(t, e)
	for _, d := range []string{"embryo", "prepare", "prepared", "run", "exited-garbage", "garbage"} {
		if ents, _ := os.ReadDir(filepath.Join(e.Dir, "pods", d)); len(ents) != 0 {
			t.Errorf("pods/%s not empty: %d entries", d, len(ents))
		}
	}
}

func TestRunDNSInheritEnvAndPodWideFlags(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/dns", "/bin/sh", "-c", "cat /etc/resolv.conf /etc/hosts; echo inherited=$ORBIT_TEST_INHERITED img=$IMG")
	envFile := filepath.Join(t.TempDir(), "env")
	writeFile(t, envFile, "# comment\nIMG=fromfile\n\nFROMFILE=1\n")
	e.ExtraEnv = []string{"ORBIT_TEST_INHERITED=yes"}
	r := e.flyRun("--dns=192.0.2.53", "--dns-search=example.org", "--hosts-entry=192.0.2.9=db.example", "--inherit-env", "--set-env-file="+envFile, aci)
	if r.Code != 0 {
		t.Fatalf("run: %s", r)
	}
	for _, want := range []string{"nameserver 192.0.2.53", "search example.org", "192.0.2.9\tdb.example", "inherited=yes", "img=fromfile"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.Stdout)
		}
	}
	for _, args := range [][]string{
		{"--dns=not-an-ip", aci},
		{"--exec=/bin/true", aci},
		{"--hosts-entry=nohost", aci},
	} {
		if r := e.flyRun(args...); r.Code == 0 || !strings.HasPrefix(r.Stderr, "orbit: ") {
			t.Errorf("run %v: want a clear refusal, got %s", args, r)
		}
	}
}

// syncBuffer holds a command's output for a test that reads it while the
// command still writes (os/exec copies into it from a goroutine of its own).
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
