package tests

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nsRun runs images in the default (nspawn) flavour without signature
// checks, saving the pod's UUID.
func (e *env) nsRun(args ...string) (result, string) {
	e.t.Helper()
	uuidFile := filepath.Join(e.t.TempDir(), "uuid")
	r := e.run(append([]string{"run", "--insecure-options=image", "--uuid-file-save=" + uuidFile}, args...)...)
	data, _ := os.ReadFile(uuidFile)
	return r, strings.TrimSpace(string(data))
}

// requireNspawn is the prerequisite of every test that runs the nspawn
// flavour.
func requireNspawn(t testing.TB) {
	t.Helper()
	requireTool(t, "systemd-nspawn", "systemd-container")
}

func TestNspawnIsDefaultAndIsolates(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/ns", "/bin/sh", "-c", "echo pid1=$(cat /proc/1/cmdline | tr '\\0' ' '); echo host=$(hostname); for n in pid mnt uts ipc net; do echo $n=$(readlink /proc/self/ns/$n); done")
	r, uuid := e.nsRun(aci)
	if r.Code != 0 {
		t.Fatalf("run: %s", r)
	}
	if strings.Contains(r.Stderr, "Attempted to remove") {
		t.Errorf("nspawn complained about its runtime directory: %s", r.Stderr)
	}
	if !strings.Contains(r.Stdout, "pid1=/nspawn/supervisor") {
		t.Errorf("PID 1 inside is not the supervisor:\n%s", r.Stdout)
	}
	if !strings.Contains(r.Stdout, "host=orbit-"+uuid+"\n") {
		t.Errorf("hostname is not orbit-%s:\n%s", uuid, r.Stdout)
	}
	for _, ns := range []string{"pid", "mnt", "uts", "ipc", "net"} {
		host, _ := os.Readlink("/proc/self/ns/" + ns)
		same := strings.Contains(r.Stdout, ns+"="+host+"\n")
		if ns == "net" && !same {
			t.Errorf("the pod should share the host's network namespace:\n%s", r.Stdout)
		}
		if ns != "net" && same {
			t.Errorf("the pod shares the host's %s namespace:\n%s", ns, r.Stdout)
		}
	}
	r, _ = e.nsRun("--hostname=custom-name", aci)
	if !strings.Contains(r.Stdout, "host=custom-name\n") {
		t.Errorf("--hostname not applied:\n%s", r)
	}
}

// TestNspawnExitCodes runs over the flavours that run pods alike (nspawn
// and kvm, see kvmPodFlavours).
func TestNspawnExitCodes(t *testing.T) {
	t.Parallel()
	for _, fl := range kvmPodFlavours() {
		t.Run(fl.name, func(t *testing.T) {
			t.Parallel()
			fl.require(t)
			podExitCodes(t, newEnv(t), fl)
		})
	}
}

func podExitCodes(t *testing.T, e *env, fl kvmFlavour) {
	aci := busyboxACI(t, "example.com/codes")
	if r, _ := fl.run(e, aci, "--exec=/bin/sh", "--", "-c", "exit 3"); r.Code != 3 {
		t.Fatalf("single app: %s", r)
	}
	start := time.Now()
	r, uuid := fl.run(e, aci, "--name=slow", "--exec=/bin/sh", "--", "-c", "echo slow-started; sleep 60", "---",
		aci, "--name=fails", "--exec=/bin/sh", "--", "-c", "sleep 0.5; echo failing; exit 4")
	if r.Code != 4 {
		t.Fatalf("multi-app pod: want exit 4 from the failing app: %s", r)
	}
	if time.Since(start) > 50*time.Second {
		t.Fatalf("the failing app did not stop the others promptly (%s)", time.Since(start))
	}
	for _, want := range []string{"slow[", "]: slow-started", "fails[", "]: failing"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("multi-app output lacks %q:\n%s", want, r.Stdout)
		}
	}
	st := e.mustRun("status", uuid).Stdout
	if !strings.Contains(st, "app-fails=4") || !strings.Contains(st, "app-slow=143") {
		t.Fatalf("status should show each app's exit code:\n%s", st)
	}
}

// TestNspawnMemoryLimitOOM runs over the flavours that run pods alike:
// under kvm the limit holds inside the VM, through the guest's cgroups.
func TestNspawnMemoryLimitOOM(t *testing.T) {
	t.Parallel()
	for _, fl := range kvmPodFlavours() {
		t.Run(fl.name, func(t *testing.T) {
			t.Parallel()
			fl.require(t)
			podMemoryLimitOOM(t, newEnv(t), fl)
		})
	}
}

func podMemoryLimitOOM(t *testing.T, e *env, fl kvmFlavour) {
	aci := busyboxACI(t, "example.com/hog")
	r, uuid := fl.run(e, aci, "--memory=32M", "--exec=/bin/sort", "--", "/dev/zero")
	if r.Code != 137 {
		t.Fatalf("want the app OOM-killed (exit 137): %s", r)
	}
	var st struct {
		Apps []struct {
			ExitCode  *int `json:"exit_code"`
			OOMKilled bool `json:"oom_killed"`
		} `json:"apps"`
	}
	if err := json.Unmarshal([]byte(e.mustRun("status", "--format=json", uuid).Stdout), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Apps) != 1 || !st.Apps[0].OOMKilled || st.Apps[0].ExitCode == nil || *st.Apps[0].ExitCode != 137 {
		t.Fatalf("status does not show the OOM kill: %+v", st)
	}
	// Without the limit the same app is not killed by us (it would fill
	// the host's memory, so only a small run is tried).
	if r, _ := fl.run(e, aci, "--memory=64M", "--exec=/bin/sh", "--", "-c", "head -c 1000000 /dev/zero | sort >/dev/null && echo fine"); r.Code != 0 || !strings.Contains(r.Stdout, "fine") {
		t.Fatalf("a small app under a limit: %s", r)
	}
}

// TestNspawnCapabilitiesSeccompAndNoNewPrivs runs over the flavours that
// run pods alike.
func TestNspawnCapabilitiesSeccompAndNoNewPrivs(t *testing.T) {
	t.Parallel()
	for _, fl := range kvmPodFlavours() {
		t.Run(fl.name, func(t *testing.T) {
			t.Parallel()
			fl.require(t)
			podCapabilitiesSeccompAndNoNewPrivs(t, newEnv(t), fl)
		})
	}
}

func podCapabilitiesSeccompAndNoNewPrivs(t *testing.T, e *env, fl kvmFlavour) {
	aci := busyboxACI(t, "example.com/sec")
	script := "touch /tmp/f && chown 1000 /tmp/f && echo chown-ok; mkdir /tmp/d && echo mkdir-ok; grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status"
	r, _ := fl.run(e, aci, "--exec=/bin/sh", "--", "-c", script)
	for _, want := range []string{"chown-ok", "mkdir-ok", "NoNewPrivs:\t0", "Seccomp:\t2"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("default isolation: output lacks %q: %s", want, r)
		}
	}
	r, _ = fl.run(e, aci, "--caps-remove=CAP_CHOWN", "--exec=/bin/sh", "--", "-c", script)
	if strings.Contains(r.Stdout, "chown-ok") || !strings.Contains(r.Stderr+r.Stdout, "Operation not permitted") {
		t.Errorf("chown worked without CAP_CHOWN: %s", r)
	}
	r, _ = fl.run(e, aci, "--seccomp=mode=remove,errno=EPERM,mkdir,mkdirat", "--exec=/bin/sh", "--", "-c", script)
	if strings.Contains(r.Stdout, "mkdir-ok") || !strings.Contains(r.Stderr+r.Stdout, "Operation not permitted") {
		t.Errorf("mkdir worked with mkdir denied by seccomp: %s", r)
	}
	r, _ = fl.run(e, "--insecure-options=seccomp", aci, "--exec=/bin/sh", "--", "-c", script)
	if !strings.Contains(r.Stdout, "Seccomp:\t0") {
		t.Errorf("--insecure-options=seccomp left a filter: %s", r)
	}
	// CAP_SYS_ADMIN (bit 21) and CAP_NET_ADMIN (bit 12) are outside the
	// default set and come only with --insecure-options=capabilities.
	capEff := func(r result) uint64 {
		for _, line := range strings.Split(r.Stdout, "\n") {
			if v, ok := strings.CutPrefix(line, "CapEff:\t"); ok {
				n, _ := strconv.ParseUint(v, 16, 64)
				return n
			}
		}
		t.Fatalf("no CapEff in %s", r)
		return 0
	}
	const sysAdmin, netAdmin = 1 << 21, 1 << 12
	r, _ = fl.run(e, aci, "--exec=/bin/sh", "--", "-c", "grep CapEff /proc/self/status")
	if c := capEff(r); c&sysAdmin != 0 || c&netAdmin != 0 {
		t.Errorf("default capabilities include CAP_SYS_ADMIN or CAP_NET_ADMIN: %x", c)
	}
	r, _ = fl.run(e, "--insecure-options=capabilities", aci, "--exec=/bin/sh", "--", "-c", "grep CapEff /proc/self/status")
	if c := capEff(r); c&sysAdmin == 0 || c&netAdmin == 0 {
		t.Errorf("--insecure-options=capabilities did not give all capabilities: %x", c)
	}
	if r, _ := fl.run(e, "--caps-retain=CAP_BOGUS", aci); r.Code == 0 || !strings.Contains(r.Stderr, "CAP_BOGUS") {
		t.Errorf("an unknown capability was accepted: %s", r)
	}
}

func TestNspawnPathRestrictions(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/paths")
	// /proc/timer_list is masked (an empty file); /proc/sys is read-only
	// even to an app with every capability. Writing a sysctl's own value
	// back changes nothing on the host if the restriction is missing.
	script := "echo timer_list=$(wc -c < /proc/timer_list); v=$(cat /proc/sys/kernel/printk_ratelimit); echo $v > /proc/sys/kernel/printk_ratelimit && echo sys-writable"
	r, _ := e.nsRun("--insecure-options=capabilities", aci, "--exec=/bin/sh", "--", "-c", script)
	if strings.Contains(r.Stdout, "sys-writable") || !strings.Contains(r.Stderr, "Read-only file system") {
		t.Errorf("/proc/sys is writable by default: %s", r)
	}
	if !strings.Contains(r.Stdout, "timer_list=0\n") {
		t.Errorf("/proc/timer_list is not masked by default: %s", r)
	}
	r, _ = e.nsRun("--insecure-options=capabilities,paths", aci, "--exec=/bin/sh", "--", "-c", script)
	if !strings.Contains(r.Stdout, "sys-writable") || strings.Contains(r.Stdout, "timer_list=0\n") {
		t.Errorf("--insecure-options=paths left restrictions: %s", r)
	}
}

// TestNspawnVolumesAndEventHandlers runs over the flavours that run pods
// alike: under kvm host volumes are 9p shares, empty ones live in the
// shared stage1 rootfs.
func TestNspawnVolumesAndEventHandlers(t *testing.T) {
	t.Parallel()
	for _, fl := range kvmPodFlavours() {
		t.Run(fl.name, func(t *testing.T) {
			t.Parallel()
			fl.require(t)
			podVolumesAndEventHandlers(t, newEnv(t), fl)
		})
	}
}

func podVolumesAndEventHandlers(t *testing.T, e *env, fl kvmFlavour) {
	m := imageManifest("example.com/events", "/bin/sh", "-c", "echo app >> /log/order; echo app-ran")
	app := m["app"].(map[string]any)
	app["eventHandlers"] = []map[string]any{
		{"name": "pre-start", "exec": []string{"/bin/sh", "-c", "echo pre-start:$EVT >> /log/order"}},
		{"name": "post-stop", "exec": []string{"/bin/sh", "-c", "echo post-stop >> /log/order"}},
	}
	app["environment"] = []map[string]string{{"name": "EVT", "value": "env-seen"}}
	app["mountPoints"] = []map[string]any{{"name": "log", "path": "/log"}}
	aci := writeACI(t, filepath.Join(t.TempDir(), "events.aci"), busyboxRootfs(t), m)
	hostDir := t.TempDir()
	r, _ := fl.run(e, "--volume=log,kind=host,source="+hostDir, aci)
	if r.Code != 0 {
		t.Fatalf("run: %s", r)
	}
	got, _ := os.ReadFile(filepath.Join(hostDir, "order"))
	if string(got) != "pre-start:env-seen\napp\npost-stop\n" {
		t.Fatalf("event handler order: %q", got)
	}

	// Two apps share an empty volume; a read-only host volume stays so.
	writeFile(t, filepath.Join(hostDir, "ro-file"), "from host\n")
	busy := busyboxACI(t, "example.com/vol")
	r, _ = fl.run(e, "--volume=shared,kind=empty,mode=0777", "--volume=ro,kind=host,source="+hostDir+",readOnly=true",
		// The writer stays until the reader has read (waits, bounded, instead of
		// fixed sleeps, so a slow start of either app changes nothing).
		busy, "--name=writer", "--mount=volume=shared,target=/shared", "--exec=/bin/sh", "--", "-c",
		"echo hello-from-writer > /shared/msg && touch /shared/written; for i in $(seq 600); do test -f /shared/done && break; sleep 0.05; done", "---",
		busy, "--name=reader", "--mount=volume=shared,target=/shared", "--mount=volume=ro,target=/ro", "--exec=/bin/sh", "--", "-c",
		"for i in $(seq 600); do test -f /shared/written && break; sleep 0.05; done; cat /shared/msg /ro/ro-file; touch /ro/new && echo ro-writable; touch /shared/done; exit 0")
	if !strings.Contains(r.Stdout, "hello-from-writer") || !strings.Contains(r.Stdout, "from host") {
		t.Fatalf("volumes not shared: %s", r)
	}
	if strings.Contains(r.Stdout, "ro-writable") {
		t.Fatalf("a readOnly host volume was writable: %s", r)
	}
}

func TestNspawnEnterStopAndSIGTERM(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	// The app says "ready" once its trap is set: stopping it before then
	// would kill it with SIGTERM instead of letting it exit 0.
	aci := busyboxACI(t, "example.com/daemon", "/bin/sh", "-c", "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.1; done")
	cmd, out, uuid := lifecycleStart(t, e, aci)
	uuids := []string{uuid}
	r := e.run("enter", uuid, "/bin/sh", "-c", "echo in=$(hostname) app=$AC_APP_NAME; cat /proc/1/cmdline | tr '\\0' ' '")
	if r.Code != 0 || !strings.Contains(r.Stdout, "in=orbit-"+uuid) || !strings.Contains(r.Stdout, "app=daemon") || !strings.Contains(r.Stdout, "supervisor") {
		t.Fatalf("enter: %s", r)
	}
	if r := e.run("enter", "--app=nosuch", uuid, "/bin/true"); r.Code == 0 {
		t.Fatalf("enter into a missing app succeeded: %s", r)
	}
	// SIGTERM to orbit run, as systemd stops a unit.
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatal("orbit run did not stop on SIGTERM")
	}
	if cmd.ProcessState.ExitCode() != 0 || !strings.Contains(out.String(), "got-term") {
		t.Fatalf("SIGTERM should reach the app, which exits 0: exit %d, output %q", cmd.ProcessState.ExitCode(), out.String())
	}

	// orbit stop, and stop --force.
	for _, force := range []bool{false, true} {
		cmd, _, uuid := lifecycleStart(t, e, aci)
		uuids = append(uuids, uuid)
		args := []string{"stop", uuid}
		if force {
			args = []string{"stop", "--force", uuid}
		}
		e.mustRun(args...)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("pod did not stop (force=%v)", force)
		}
		want := "app-daemon=0" // it traps SIGTERM and exits 0
		if force {
			want = "app-daemon=137"
		}
		if st := e.mustRun("status", uuid).Stdout; !strings.Contains(st, "state=exited") || !strings.Contains(st, want) {
			t.Fatalf("after stop (force=%v), want %s: %s", force, want, st)
		}
		if code := cmd.ProcessState.ExitCode(); (force && code != 137) || (!force && code != 0) {
			t.Fatalf("orbit run exited %d after stop (force=%v)", code, force)
		}
	}
	e.mustRun("gc", "--grace-period=0s")
	assertNoMounts(t, e)
	assertNoPodCgroups(t, uuids...)
}

// assertNoPodCgroups checks that the pods' cgroups are gone from every
// hierarchy (they nest below the cgroup orbit ran in).
func assertNoPodCgroups(t *testing.T, uuids ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, u := range uuids {
		want[u] = true
	}
	filepath.WalkDir("/sys/fs/cgroup", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if strings.Count(p, "/") > 10 {
			return filepath.SkipDir
		}
		if want[d.Name()] {
			t.Errorf("cgroup left behind: %s", p)
			return filepath.SkipDir
		}
		return nil
	})
}

func TestNspawnInteractiveThroughPty(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	requireTool(t, "script", "util-linux")
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/tty")
	line := strings.Join(append([]string{binary}, e.args("run", "--insecure-options=image", "--interactive", aci, "--exec=/bin/sh", "--", "-c", "'read x; echo got:$x; test -t 0 && echo is-a-tty'")...), " ")
	cmd := exec.Command("script", "-qec", line, "/dev/null")
	cmd.Stdin = strings.NewReader("typed-input\n")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("interactive run: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "got:typed-input") || !strings.Contains(string(out), "is-a-tty") {
		t.Fatalf("interactive app did not get the terminal: %q", out)
	}
}

func TestNspawnPodManifest(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/pm")
	id := strings.TrimSpace(e.mustRun("fetch", "--full", "--insecure-options=image", aci).Stdout)
	pm := map[string]any{
		"acKind": "PodManifest", "acVersion": "0.8.11",
		"apps": []map[string]any{{
			"name":  "from-manifest",
			"image": map[string]any{"id": id},
			"app":   map[string]any{"exec": []string{"/bin/sh", "-c", "echo manifest-app $FOO; exit 6"}, "user": "0", "group": "0", "environment": []map[string]string{{"name": "FOO", "value": "bar"}}},
		}},
	}
	data, _ := json.Marshal(pm)
	path := filepath.Join(t.TempDir(), "pod.json")
	os.WriteFile(path, data, 0o644)
	r, _ := e.nsRun("--pod-manifest=" + path)
	if r.Code != 6 || !strings.Contains(r.Stdout, "manifest-app bar") {
		t.Fatalf("--pod-manifest: %s", r)
	}
	os.WriteFile(path, []byte(`{"acKind":"PodManifest"`), 0o644)
	if r, _ := e.nsRun("--pod-manifest=" + path); r.Code == 0 || !strings.Contains(r.Stderr, "pod-manifest") {
		t.Fatalf("a malformed pod manifest was accepted: %s", r)
	}
}

// An entered command is isolated like the app: same capabilities, seccomp
// filter, no_new_privs and cgroups, and the launcher that starts it is not
// one the app can replace.
func TestNspawnEnterIsIsolatedLikeTheApp(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	show := "grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; grep memory /proc/self/cgroup | sed 's/.*\\///'"
	aci := busyboxACI(t, "example.com/iso", "/bin/sh", "-c", show+"; sleep 30")
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	cmd := e.command("run", "--insecure-options=image", "--uuid-file-save="+uuidFile, aci, "--caps-retain=CAP_KILL")
	var out syncBuffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	uuid := waitRunning(t, e, uuidFile)
	r := e.mustRun("enter", uuid, "/bin/sh", "-c", show)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "iso") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if r.Stdout != out.String() {
		t.Fatalf("entered command isolation differs from the app's:\nenter: %q\napp:   %q", r.Stdout, out.String())
	}
	e.mustRun("stop", "--force", uuid)
}
