package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
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
