package tests

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// appSandbox starts a sandbox (in the background, the default) and
// returns its UUID; the pod is stopped and collected at the end.
func appSandbox(t *testing.T, e *env, flags ...string) string {
	t.Helper()
	requireTool(t, "systemd-nspawn", "systemd-container")
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	r := e.mustRun(append([]string{"app", "sandbox", "--insecure-options=image", "--net=host", "--uuid-file-save=" + uuidFile}, flags...)...)
	b, err := os.ReadFile(uuidFile)
	if err != nil {
		t.Fatal(err)
	}
	uuid := strings.TrimSpace(string(b))
	if strings.TrimSpace(r.Stdout) != uuid {
		t.Fatalf("sandbox printed %q, saved %q", r.Stdout, uuid)
	}
	t.Cleanup(func() { e.runQuiet("stop", uuid) })
	return uuid
}

// appInfo is one line of `orbit app list --format=json`.
type appInfo struct {
	Name       string    `json:"name"`
	State      string    `json:"state"`
	Pid        int       `json:"pid"`
	ExitCode   *int      `json:"exitCode"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
}

func appList(t *testing.T, e *env, uuid string) map[string]appInfo {
	t.Helper()
	r := e.mustRun("app", "list", "--format=json", uuid)
	var apps []appInfo
	if err := json.Unmarshal([]byte(r.Stdout), &apps); err != nil {
		t.Fatalf("app list: %v\n%s", err, r)
	}
	m := map[string]appInfo{}
	for _, a := range apps {
		m[a.Name] = a
	}
	return m
}

func appWaitState(t *testing.T, e *env, uuid, app, state string) appInfo {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		a := appList(t, e, uuid)[app]
		if a.State == state {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("app %s is %q, want %q", app, a.State, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestAppLifecycle(t *testing.T) {
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/counter", "/bin/sh", "-c", "echo run >> /runs; echo out-$(wc -l < /runs); echo err >&2; exit 3")
	uuid := appSandbox(t, e)
	if r := e.mustRun("status", uuid); !strings.Contains(r.Stdout, "state=running") {
		t.Fatalf("sandbox status: %s", r)
	}
	if apps := appList(t, e, uuid); len(apps) != 0 {
		t.Fatalf("a new sandbox has apps: %v", apps)
	}
	logFile := filepath.Join(t.TempDir(), "counter.log")
	r := e.mustRun("app", "add", "--insecure-options=image", uuid, aci, "--log="+logFile)
	if strings.TrimSpace(r.Stdout) != "counter" {
		t.Fatalf("app add printed %q", r.Stdout)
	}
	if a := appList(t, e, uuid)["counter"]; a.State != "created" || a.ExitCode != nil {
		t.Fatalf("added app %+v", a)
	}
	// orbit list shows a sandbox's apps in their own states.
	appListState := func(want string) {
		t.Helper()
		var pods []struct {
			Name string `json:"name"`
			Apps []struct {
				Name  string `json:"name"`
				State string `json:"state"`
			} `json:"apps"`
		}
		if err := json.Unmarshal([]byte(e.mustRun("list", "--format=json").Stdout), &pods); err != nil {
			t.Fatal(err)
		}
		for _, p := range pods {
			for _, a := range p.Apps {
				if p.Name == uuid && a.Name == "counter" && a.State == want {
					return
				}
			}
		}
		t.Fatalf("orbit list does not show the app %s: %+v", want, pods)
	}
	appListState("created")
	// cat-manifest shows the pod as it is now.
	if r := e.mustRun("cat-manifest", uuid); !strings.Contains(r.Stdout, `"counter"`) || !strings.Contains(r.Stdout, `"coreos.com/rkt/stage1/mutable"`) {
		t.Fatalf("cat-manifest: %s", r)
	}
	before := time.Now()
	e.mustRun("app", "start", uuid, "--app=counter")
	a := appWaitState(t, e, uuid, "counter", "exited")
	if a.ExitCode == nil || *a.ExitCode != 3 || a.StartedAt.Before(before.Add(-time.Second)) || a.FinishedAt.Before(a.StartedAt) {
		t.Fatalf("exited app %+v", a)
	}
	appListState("exited")
	if r := e.mustRun("status", uuid); !strings.Contains(r.Stdout, "app-counter=3\n") {
		t.Fatalf("status of a sandbox whose app exited: %s", r)
	}
	// An app that exits does not end the sandbox.
	if r := e.mustRun("status", uuid); !strings.Contains(r.Stdout, "state=running") {
		t.Fatalf("the sandbox ended with its app: %s", r)
	}
	// Restart: the rootfs is kept.
	e.mustRun("app", "start", uuid, "--app=counter")
	appWaitState(t, e, uuid, "counter", "exited")
	r = e.mustRun("app", "status", "--format=json", uuid, "--app=counter")
	var st appInfo
	if err := json.Unmarshal([]byte(r.Stdout), &st); err != nil || st.State != "exited" || *st.ExitCode != 3 {
		t.Fatalf("app status: %v %s", err, r)
	}
	if r := e.mustRun("app", "status", uuid, "--app=counter"); !strings.Contains(r.Stdout, "state=exited\n") || !strings.Contains(r.Stdout, "exit_code=3\n") {
		t.Fatalf("app status: %s", r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(logFile)
		if string(b) == "out-1\nerr\nout-2\nerr\n" || string(b) == "err\nout-1\nerr\nout-2\n" || strings.Count(string(b), "\n") == 4 && strings.Contains(string(b), "out-2\n") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log file %q", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// orbit logs prints the app's log file, and the background sandbox's
	// own output.
	if r := e.mustRun("logs", "--app=counter", uuid); strings.Count(r.Stdout, "out-") != 2 {
		t.Fatalf("orbit logs --app: %s", r)
	}
	e.mustRun("logs", uuid)
	// Removal.
	e.mustRun("app", "rm", uuid, "--app=counter")
	if apps := appList(t, e, uuid); len(apps) != 0 {
		t.Fatalf("removed app listed: %v", apps)
	}
	if r := e.run("app", "start", uuid, "--app=counter"); r.Code == 0 || !strings.Contains(r.Stderr, "not found") {
		t.Fatalf("starting a removed app: %s", r)
	}
	pods, _ := filepath.Glob(filepath.Join(e.Dir, "pods/run", uuid, "stage1/rootfs/opt/stage2/*"))
	if len(pods) != 0 {
		t.Fatalf("removed app's files left: %v", pods)
	}
	// The same name again, then stop the pod: list answers from the
	// directory once it has exited.
	e.mustRun("app", "add", "--insecure-options=image", uuid, aci, "--name=again", "--exec=/bin/sleep", "--", "1000")
	e.mustRun("app", "start", uuid, "--app=again")
	appWaitState(t, e, uuid, "again", "running")
	e.mustRun("stop", uuid)
	if r := e.mustRun("status", "--wait=30s", uuid); !strings.Contains(r.Stdout, "state=exited") {
		t.Fatalf("stopped sandbox: %s", r)
	}
	if a := appList(t, e, uuid)["again"]; a.State != "exited" {
		t.Fatalf("after the pod stopped, the app is %+v", a)
	}
}

func TestAppFailingAppLeavesSiblingsAndEnter(t *testing.T) {
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/bb", "/bin/sleep", "1000")
	uuid := appSandbox(t, e)
	e.mustRun("app", "add", "--insecure-options=image", uuid, aci, "--name=long")
	e.mustRun("app", "add", "--insecure-options=image", uuid, aci, "--name=fails", "--exec=/bin/false")
	e.mustRun("app", "add", "--insecure-options=image", uuid, aci, "--name=stubborn", "--exec=/bin/sh", "--", "-c", "trap '' TERM; while :; do sleep 1; done")
	for _, n := range []string{"long", "fails", "stubborn"} {
		e.mustRun("app", "start", uuid, "--app="+n)
	}
	if a := appWaitState(t, e, uuid, "fails", "exited"); *a.ExitCode != 1 {
		t.Fatalf("failing app %+v", a)
	}
	time.Sleep(300 * time.Millisecond)
	apps := appList(t, e, uuid)
	if apps["long"].State != "running" || apps["stubborn"].State != "running" || apps["long"].Pid == 0 {
		t.Fatalf("siblings of a failed app: %+v", apps)
	}
	// enter and the pod-level commands see the added apps.
	if r := e.mustRun("enter", "--app=long", uuid, "/bin/ls", "/"); !strings.Contains(r.Stdout, "bin") {
		t.Fatalf("enter: %s", r)
	}
	if r := e.mustRun("list", "--no-legend"); !strings.Contains(r.Stdout, "long") {
		t.Fatalf("list: %s", r)
	}
	if r := e.run("app", "rm", uuid, "--app=long"); r.Code == 0 || !strings.Contains(r.Stderr, "stop it first") {
		t.Fatalf("removing a running app: %s", r)
	}
	e.mustRun("app", "stop", uuid, "--app=long")
	if a := appList(t, e, uuid)["long"]; a.State != "exited" || *a.ExitCode != 128+15 {
		t.Fatalf("stopped app %+v", a)
	}
	// SIGTERM ignored: SIGKILL after the grace period.
	start := time.Now()
	e.mustRun("app", "stop", uuid, "--app=stubborn")
	if a := appList(t, e, uuid)["stubborn"]; a.State != "exited" || *a.ExitCode != 128+9 || time.Since(start) < 5*time.Second {
		t.Fatalf("stubborn app %+v after %v", a, time.Since(start))
	}
	e.mustRun("app", "rm", uuid, "--app=long")
	// A pod made by run is not mutable.
	run := e.mustRun("run", "--insecure-options=image", "--net=host", aci, "--exec=/bin/true")
	_ = run
	out := e.mustRun("list", "--format=json")
	var pods []struct {
		Name string `json:"name"`
	}
	json.Unmarshal([]byte(out.Stdout), &pods)
	for _, p := range pods {
		if p.Name == uuid {
			continue
		}
		if r := e.run("app", "add", "--insecure-options=image", p.Name, aci); r.Code == 0 || !strings.Contains(r.Stderr, "not running") && !strings.Contains(r.Stderr, "not a sandbox") {
			t.Fatalf("app add to a run pod: %s", r)
		}
	}
}

func TestAppIsolatorsAndVolumes(t *testing.T) {
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/iso", "/bin/sh", "-c", "id -u > /vol/id; grep -E '^Cap(Eff|Bnd)' /proc/self/status >> /vol/id; touch /ro-test 2>>/vol/id; echo done >> /vol/id; exec sleep 1000")
	host := t.TempDir()
	if err := os.Chmod(host, 0o777); err != nil {
		t.Fatal(err)
	}
	uuid := appSandbox(t, e, "--volume=data,kind=host,source="+host)
	if r := e.run("app", "add", "--insecure-options=image", uuid, aci, "--mount=volume=nope,target=/vol"); r.Code == 0 || !strings.Contains(r.Stderr, "nope") {
		t.Fatalf("mount of an unknown volume: %s", r)
	}
	e.mustRun("app", "add", "--insecure-options=image", uuid, aci, "--user=1000", "--memory=64M", "--caps-retain=CAP_CHOWN", "--readonly-rootfs", "--mount=volume=data,target=/vol")
	e.mustRun("app", "start", uuid, "--app=iso")
	appWaitState(t, e, uuid, "iso", "running")
	var got string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		b, _ := os.ReadFile(filepath.Join(host, "id"))
		if got = string(b); strings.HasSuffix(got, "done\n") || time.Now().After(deadline) {
			break
		}
	}
	if !strings.HasPrefix(got, "1000\n") || !strings.Contains(got, "Read-only file system") || !strings.HasSuffix(got, "done\n") {
		t.Fatalf("the added app's isolation: %q", got)
	}
	// The memory limit, on the app's cgroup below the pod's.
	cg, err := os.ReadFile(filepath.Join(e.Dir, "pods/run", uuid, "cgroups"))
	if err != nil {
		t.Fatal(err)
	}
	limit := ""
	for _, dir := range strings.Fields(string(cg)) {
		for _, f := range []string{"memory.max", "memory.limit_in_bytes"} {
			if m, _ := filepath.Glob(filepath.Join(dir, "*", "iso", f)); len(m) > 0 {
				b, _ := os.ReadFile(m[0])
				limit = strings.TrimSpace(string(b))
			} else if b, err := os.ReadFile(filepath.Join(dir, "iso", f)); err == nil {
				limit = strings.TrimSpace(string(b))
			}
		}
	}
	if limit != "64000000" { // --memory=64M is decimal
		t.Fatalf("the added app's memory limit is %q (cgroups %q)", limit, cg)
	}
	if !strings.Contains(got, "CapBnd:\t0000000000000001") {
		t.Fatalf("capabilities of the added app: %q", got)
	}
}

func TestAppConcurrentAdds(t *testing.T) {
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/twice", "/bin/sleep", "1000")
	uuid := appSandbox(t, e)
	e.mustRun("fetch", "--insecure-options=image", aci)
	race := func(names ...string) []result {
		var wg sync.WaitGroup
		out := make([]result, len(names))
		for i, n := range names {
			wg.Add(1)
			go func() {
				defer wg.Done()
				args := []string{"app", "add", "--insecure-options=image", uuid, aci}
				if n != "" {
					args = append(args, "--name="+n)
				}
				out[i] = runCommand(t, e.command(args...))
			}()
		}
		wg.Wait()
		return out
	}
	// Distinct names: both succeed.
	for _, r := range race("one", "two") {
		if r.Code != 0 {
			t.Fatalf("concurrent add: %s", r)
		}
	}
	// The same name: one succeeds, the other fails cleanly.
	rs := race("", "")
	ok, failed := 0, 0
	for _, r := range rs {
		if r.Code == 0 {
			ok++
		} else if strings.Contains(r.Stderr, "already exists") {
			failed++
		}
	}
	if ok != 1 || failed != 1 {
		t.Fatalf("two adds of one name: %s\n%s", rs[0], rs[1])
	}
	apps := appList(t, e, uuid)
	if len(apps) != 3 || apps["twice"].State != "created" {
		t.Fatalf("apps after concurrent adds: %+v", apps)
	}
	for n := range apps {
		e.mustRun("app", "start", uuid, "--app="+n)
	}
}

func TestAppAddKilled(t *testing.T) {
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/killed", "/bin/sleep", "1000")
	uuid := appSandbox(t, e)
	e.mustRun("fetch", "--insecure-options=image", aci)
	podDir := filepath.Join(e.Dir, "pods/run", uuid)
	for i := 0; i < 8; i++ {
		cmd := e.command("app", "add", "--insecure-options=image", uuid, aci, "--name=k")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		apps := appList(t, e, uuid)
		if a, ok := apps["k"]; ok {
			// Whole: created, its rootfs and records in place.
			if a.State != "created" {
				t.Fatalf("round %d: app %+v", i, a)
			}
			for _, f := range []string{"stage1/rootfs/opt/stage2/k/rootfs/bin/busybox", "stage1/rootfs/opt/stage2/k/manifest", "appsinfo/k/manifest", "appsinfo/k/treeStoreID"} {
				if _, err := os.Stat(filepath.Join(podDir, f)); err != nil {
					t.Fatalf("round %d: the listed app lacks %s", i, f)
				}
			}
			// It can be started (added to the supervisor if the kill
			// came before) and removed.
			e.mustRun("app", "start", uuid, "--app=k")
			appWaitState(t, e, uuid, "k", "running")
			e.mustRun("app", "stop", uuid, "--app=k")
			e.mustRun("app", "rm", uuid, "--app=k")
		} else if len(apps) != 0 {
			t.Fatalf("round %d: apps %+v", i, apps)
		}
	}
	// Whatever a kill left is cleaned by the next change.
	e.mustRun("app", "add", "--insecure-options=image", uuid, aci, "--name=last")
	for _, d := range []string{"appsinfo", "stage1/rootfs/opt/stage2"} {
		ents, _ := os.ReadDir(filepath.Join(podDir, d))
		if len(ents) != 1 || ents[0].Name() != "last" {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Fatalf("%s holds %v", d, names)
		}
	}
	// gc removes the stopped pod whole: no mount is left below it.
	e.mustRun("stop", uuid)
	e.mustRun("status", "--wait=30s", uuid)
	e.mustRun("gc", "--grace-period=0s")
	if _, err := os.Stat(filepath.Join(e.Dir, "pods/exited-garbage", uuid)); !os.IsNotExist(err) {
		t.Fatalf("pod left after gc: %v", err)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), uuid) {
		t.Fatalf("a mount of the pod is left after gc")
	}
}

// TestAppSandboxForegroundAndLabels: `app sandbox --foreground` stays as the
// pod's process, as a systemd unit runs it, and ends with the pod when it
// is stopped; --label and --annotation reach the pod manifest.
func TestAppSandboxForegroundAndLabels(t *testing.T) {
	t.Parallel()
	requireTool(t, "systemd-nspawn", "systemd-container")
	e := newEnv(t)
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	cmd := e.command("app", "sandbox", "--insecure-options=image", "--foreground", "--uuid-file-save="+uuidFile,
		"--label=team=web", "--annotation=example.com/owner=ops")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var uuid string
	for deadline := time.Now().Add(20 * time.Second); ; {
		if b, err := os.ReadFile(uuidFile); err == nil && len(b) > 0 {
			uuid = strings.TrimSpace(string(b))
			if r := e.run("status", uuid); strings.Contains(r.Stdout, "state=running") && strings.Contains(r.Stdout, "pid=") {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("the foreground sandbox ended by itself: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the sandbox did not come up:\n%s", out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	m := e.mustRun("cat-manifest", uuid).Stdout
	if !strings.Contains(m, `"team": "web"`) && !strings.Contains(m, `"team":"web"`) || !strings.Contains(m, "example.com/owner") {
		t.Errorf("the pod manifest lacks the label or the annotation: %s", m)
	}
	aci := busyboxACI(t, "example.com/fg", "/bin/sleep", "1000")
	e.mustRun("app", "add", "--insecure-options=image", uuid, aci)
	e.mustRun("app", "start", uuid, "--app=fg")
	appWaitState(t, e, uuid, "fg", "running")
	e.mustRun("stop", uuid)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("the foreground sandbox ended with %v after stop:\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the foreground sandbox did not end after stop:\n%s", out.String())
	}
	if r := e.mustRun("status", uuid); !strings.Contains(r.Stdout, "state=exited") {
		t.Errorf("status after stop: %s", r)
	}
	if r := e.run("app", "sandbox", "--insecure-options=image", "--label=novalue"); r.Code == 0 || !strings.Contains(r.Stderr, "--label") {
		t.Errorf("a bad --label: %s", r)
	}
}

// TestAppLogsWithoutFiles: a pod that keeps no log says where its output
// went, in one line.
func TestAppLogsWithoutFiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	e.mustRun("run", "--insecure-options=image", "--stage1-name=fly", "--uuid-file-save="+uuidFile, busyboxACI(t, "example.com/nolog"))
	b, err := os.ReadFile(uuidFile)
	if err != nil {
		t.Fatal(err)
	}
	uuid := strings.TrimSpace(string(b))
	if r := e.run("logs", uuid); r.Code == 0 || !strings.Contains(r.Stderr, "journalctl") || strings.Count(r.Stderr, "\n") != 1 {
		t.Errorf("orbit logs of a pod without logs: %s", r)
	}
	if r := e.run("logs", "--app=nolog", uuid); r.Code == 0 || !strings.Contains(r.Stderr, "--log=FILE") || strings.Count(r.Stderr, "\n") != 1 {
		t.Errorf("orbit logs --app of an app without a log file: %s", r)
	}
}

// TestAppChangeWhileItsPostStopRuns: once an app has exited (app list says
// so, from its recorded status) its post-stop handler may still run; app
// rm and app start of that app wait for the handler instead of refusing
// the app as running.
func TestAppChangeWhileItsPostStopRuns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := imageManifest("example.com/slowstop", "/bin/sh", "-c", "echo ran >> /runs; exit 4")
	app := m["app"].(map[string]any)
	app["eventHandlers"] = []map[string]any{
		{"name": "post-stop", "exec": []string{"/bin/sh", "-c", "sleep 2; echo post >> /runs"}},
	}
	aci := writeACI(t, filepath.Join(t.TempDir(), "slowstop.aci"), busyboxRootfs(t), m)
	uuid := appSandbox(t, e)
	for _, op := range []string{"start", "rm"} {
		name := "slow-" + op
		e.mustRun("app", "add", "--insecure-options=image", uuid, aci, "--name="+name)
		e.mustRun("app", "start", uuid, "--app="+name)
		if a := appWaitState(t, e, uuid, name, "exited"); a.ExitCode == nil || *a.ExitCode != 4 {
			t.Fatalf("app %s: %+v", name, a)
		}
		// The post-stop handler sleeps now; the change must wait for it.
		switch op {
		case "start":
			e.mustRun("app", "start", uuid, "--app="+name)
			appWaitState(t, e, uuid, name, "exited")
		case "rm":
			e.mustRun("app", "rm", uuid, "--app="+name)
			if _, ok := appList(t, e, uuid)[name]; ok {
				t.Fatalf("app %s is still listed after app rm", name)
			}
		}
	}
}
