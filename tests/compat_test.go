package tests

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// rkt command lines that unit files and scripts use, as orbit must accept
// them.
func TestRktCommandLines(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/compat", "/bin/sh", "-c", "cat /etc/hosts; echo env=$FROMFILE")
	dir := t.TempDir()
	uuidFile := filepath.Join(dir, "uuid")
	envFile := filepath.Join(dir, "env")
	writeFile(t, envFile, "; rkt allows semicolon comments\n# and hash ones\nFROMFILE=yes\n")

	// rkt's stage1 image names mean orbit's flavours.
	r := e.run("run", "--insecure-options=image", "--stage1-name=coreos.com/rkt/stage1-fly:1.30.0", "--uuid-file-save="+uuidFile,
		"--set-env-file="+envFile, "--hosts-entry=192.0.2.1=db,192.0.2.2=cache", "--port=http:8080", aci)
	if r.Code != 0 {
		t.Fatalf("run: %s", r)
	}
	for _, want := range []string{"192.0.2.1\tdb\n", "192.0.2.2\tcache\n", "env=yes"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q: %s", want, r)
		}
	}
	uuid := readTrimmed(t, uuidFile)
	var pm struct {
		Ports []struct {
			Name     string `json:"name"`
			HostPort int    `json:"hostPort"`
		} `json:"ports"`
	}
	if err := json.Unmarshal([]byte(e.mustRun("cat-manifest", "--uuid-file="+uuidFile).Stdout), &pm); err != nil {
		t.Fatal(err)
	}
	if len(pm.Ports) != 1 || pm.Ports[0].Name != "http" || pm.Ports[0].HostPort != 8080 {
		t.Errorf("--port not in the pod manifest: %+v", pm)
	}
	// A unit's ExecStop after the app has exited, and ExecStopPost.
	if r := e.run("stop", "--uuid-file="+uuidFile); r.Code != 0 || !strings.Contains(r.Stdout, "already stopped") {
		t.Errorf("stop of an exited pod: %s", r)
	}
	if r := e.run("status", "--wait=10s", uuid); r.Code != 0 || !strings.Contains(r.Stdout, "state=exited") || !strings.Contains(r.Stdout, "pid=") {
		t.Errorf("status --wait=10s: %s", r)
	}
	r = e.mustRun("gc", "--mark-only")
	if !strings.Contains(r.Stderr, "Moving pod") || !strings.Contains(e.mustRun("list", "--no-legend").Stdout, "exited garbage") {
		t.Errorf("gc --mark-only should mark and keep the pod: %s", r)
	}
	e.mustRun("gc", "--grace-period=0s")

	// rkt's deprecated spellings: they work, and their notice stays off
	// stdout, which scripts capture.
	if r := e.run("fetch", "--insecure-options=image", "--store-only", aci); r.Code != 0 || strings.Count(r.Stdout, "\n") != 1 || !strings.Contains(r.Stderr, "deprecated") {
		t.Errorf("fetch --store-only: %s", r)
	}
	if r := e.run("run", "--insecure-options=image", "--stage1-from-dir=stage1-fly.aci", "--store-only", aci); r.Code != 0 {
		t.Errorf("--stage1-from-dir=stage1-fly.aci --store-only: %s", r)
	}
	if r := e.run("run", "--insecure-options=image", "--stage1-name=fly", aci, "--cap-retain=CAP_KILL"); r.Code != 0 {
		t.Errorf("--cap-retain: %s", r)
	}

	// What rkt refuses, orbit refuses.
	pmFile := filepath.Join(dir, "pod.json")
	writeFile(t, pmFile, `{"acKind":"PodManifest","acVersion":"0.8.11","apps":[]}`)
	for _, args := range [][]string{
		{"--pod-manifest=" + pmFile, "--inherit-env"},
		{"--dns=host", "--dns-search=example.org", aci},
		{"--hosts-entry=192.0.2.1=bad_name", aci},
		{"--port=http", aci},
		{"--store-only", "--no-store", aci},
		{"--private-users", aci},
	} {
		r := e.run(append([]string{"run", "--insecure-options=image", "--stage1-name=fly"}, args...)...)
		lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
		if r.Code == 0 || !strings.HasPrefix(lines[len(lines)-1], "orbit: ") {
			t.Errorf("run %v: want a one-line refusal, got %s", args, r)
		}
	}
}
