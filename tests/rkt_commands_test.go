package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Functional tests of commands and configuration orbit shares with rkt
// 1.30; helpers are in rkt_compat_test.go.

// enter passes the caller's TERM to the entered command.
func TestRktEnterPassesCallersTerm(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := rktImage(t, "example.com/enterterm", nil, "/bin/sh", "-c", "sleep 30")
	for _, fl := range rktFlavours(t) {
		uuidFile := filepath.Join(t.TempDir(), "uuid")
		cmd := e.command("run", "--insecure-options=image", "--uuid-file-save="+uuidFile, fl, aci)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		uuid := waitRunning(t, e, uuidFile)
		c := e.command("enter", uuid, "/bin/sh", "-c", "echo TERM=$TERM")
		c.Env = append(c.Env, "TERM=dumb")
		if r := runCommand(t, c); r.Code != 0 || !strings.Contains(r.Stdout, "TERM=dumb\n") {
			t.Errorf("%s: enter with TERM=dumb: %s", fl, r)
		}
		e.run("stop", "--force", uuid)
		cmd.Wait()
	}
}

// Commands that need root say so up front, in one line.
func TestRktRootCheckUpFront(t *testing.T) {
	t.Parallel()
	setpriv := requireTool(t, "setpriv", "util-linux")
	dir, err := os.MkdirTemp("", "orbit-rootcheck-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	data, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "orbit")
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"gc"}, {"rm", "abc"}, {"run", "example.com/x"}, {"prepare", "example.com/x"}, {"enter", "abc"}, {"stop", "abc"}, {"run-prepared", "abc"}, {"export", "abc", "out.aci"}} {
		cmd := exec.Command(setpriv, append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", bin, "--dir=" + dir + "/data"}, args...)...)
		r := runCommand(t, cmd)
		want := "needs root for 'orbit " + args[0] + "'"
		if r.Code == 0 || !strings.Contains(r.Stderr, want) || strings.Count(r.Stderr, "\n") != 1 {
			t.Errorf("orbit %s as nobody: want one line %q: %s", args[0], want, r)
		}
	}
	// Commands that only read do not need root.
	if r := runCommand(t, exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", bin, "version")); r.Code != 0 {
		t.Errorf("orbit version as nobody: %s", r)
	}
}

// status reads the pod from --uuid-file, as rkt's does.
func TestRktStatusUUIDFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/statusfile")
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	e.mustRun("run", "--insecure-options=image", rktFly, "--uuid-file-save="+uuidFile, aci)
	if r := e.run("status", "--uuid-file="+uuidFile); r.Code != 0 || !strings.Contains(r.Stdout, "state=exited") {
		t.Errorf("status --uuid-file: %s", r)
	}
	if r := e.run("status", "--uuid-file="+uuidFile, readTrimmed(t, uuidFile)); r.Code == 0 {
		t.Errorf("status with both a UUID and --uuid-file was accepted: %s", r)
	}
}

// config --pretty-print (on by default, as in rkt) and --pretty-print=false.
func TestRktConfigPrettyPrint(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		args  []string
		lines bool
	}{{nil, true}, {[]string{"--pretty-print"}, true}, {[]string{"--pretty-print=false"}, false}} {
		r := e.mustRun(append([]string{"config"}, tc.args...)...)
		var v map[string]any
		if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil || v["stage0"] == nil {
			t.Errorf("config %v: not JSON with stage0: %v: %s", tc.args, err, r)
		}
		if got := strings.Count(strings.TrimSpace(r.Stdout), "\n") > 0; got != tc.lines {
			t.Errorf("config %v: indented %v, want %v: %s", tc.args, got, tc.lines, r)
		}
	}
}

// image rm of the same ID twice on one command line removes it once and
// exits 0, as rkt's does; an image that is not in the store still fails
// (rkt ignored every lookup failure, which hides typos).
func TestRktImageRmTwiceExitsZero(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/rmtwice")
	id := strings.TrimSpace(e.mustRun("fetch", "--insecure-options=image", aci).Stdout)
	r := e.run("image", "rm", id, id)
	if r.Code != 0 || strings.Count(r.Stdout, "successfully removed aci") != 1 {
		t.Errorf("image rm ID ID: %s", r)
	}
	id = strings.TrimSpace(e.mustRun("fetch", "--insecure-options=image", aci).Stdout)
	r = e.run("image", "rm", id, "example.com/rmtwice")
	if r.Code != 0 || strings.Count(r.Stdout, "successfully removed aci") != 1 {
		t.Errorf("image rm ID NAME of one image: %s", r)
	}
	if r := e.run("image", "rm", id); r.Code == 0 || !strings.Contains(r.Stderr, "not found") {
		t.Errorf("image rm of an image not in the store: %s", r)
	}
}

// list shows image IDs only with --full, and then whole: sha512- and the
// full hash, as the pod manifest names the image.
func TestRktListFullShowsWholeImageIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/listfull")
	id := strings.TrimSpace(e.mustRun("fetch", "--insecure-options=image", aci).Stdout)
	e.mustRun("prepare", "--insecure-options=image", rktFly, aci)
	if out := e.mustRun("list").Stdout; strings.Contains(out, "sha512-") || strings.Contains(out, "IMAGE ID") {
		t.Errorf("list without --full shows image IDs: %q", out)
	}
	out := e.mustRun("list", "--full").Stdout
	if !strings.Contains(out, "IMAGE ID") || !regexp.MustCompile(`\s`+regexp.QuoteMeta(id)+`[0-9a-f]*\s`).MatchString(out) || !regexp.MustCompile(`\ssha512-[0-9a-f]{128}\s`).MatchString(out) {
		t.Errorf("list --full: want the whole image ID %s: %q", id, out)
	}
}

// stage1.d sets the default stage1 (local-config over system-config), and
// paths.d's stage1-images is where --stage1-from-dir looks, as in rkt.
func TestRktStage1AndPathsConfigKinds(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/s1conf", "/bin/sh", "-c", "echo pid1=$(tr '\\0' ' ' </proc/1/cmdline)")
	stage1 := func(dir, name string) {
		writeFile(t, filepath.Join(dir, "stage1.d", "50-stage1.json"),
			`{"rktKind":"stage1","rktVersion":"v1","name":"`+name+`","version":"1.30.0","location":"/nonexistent.aci"}`)
	}
	stage1(e.SystemCfg, "coreos.com/rkt/stage1-fly")
	r := e.run("run", "--insecure-options=image", aci)
	if r.Code != 0 || strings.Contains(r.Stdout, "orbit-supervisor") || !strings.Contains(r.Stdout, "pid1=") {
		t.Errorf("system-config stage1.d naming fly: want the fly flavour: %s", r)
	}
	stage1(e.LocalCfg, "coreos.com/rkt/stage1-coreos")
	r = e.run("run", "--insecure-options=image", aci)
	if r.Code != 0 || !strings.Contains(r.Stdout, "supervisor") {
		t.Errorf("local-config stage1.d naming coreos over the system's fly: want nspawn: %s", r)
	}
	images := t.TempDir()
	writeFile(t, filepath.Join(images, "mine.aci"), "not an image")
	writeFile(t, filepath.Join(e.LocalCfg, "paths.d", "paths.json"), `{"rktKind":"paths","rktVersion":"v1","stage1-images":"`+images+`"}`)
	r = e.run("run", "--insecure-options=image", "--stage1-from-dir=mine.aci", aci)
	if r.Code == 0 || !strings.Contains(r.Stderr, filepath.Join(images, "mine.aci")) {
		t.Errorf("--stage1-from-dir with paths.d's stage1-images: want the configured directory used: %s", r)
	}
}

// orbit export writes an exited pod's app, with the changes it made to
// its root filesystem, as an ACI that fetch imports and run runs: under
// both flavours, with overlays and with copies (--no-overlay).
func TestRktExportExitedPodApp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := rktExportImage(t, "example.com/exported")
	check := "cat /etc/keep /made/file; test -e /etc/gone || echo gone-absent; test -e /data/x || echo volume-left-out"
	for _, fl := range rktFlavours(t) {
		for _, overlay := range []string{"--no-overlay=false", "--no-overlay"} {
			uuidFile := filepath.Join(t.TempDir(), "uuid")
			e.mustRun("run", "--insecure-options=image", fl, overlay, "--uuid-file-save="+uuidFile,
				"--volume=data,kind=host,source="+t.TempDir(), aci)
			uuid := readTrimmed(t, uuidFile)
			out := filepath.Join(t.TempDir(), "out.aci")
			if r := e.run("export", uuid, out); r.Code != 0 || r.Stdout+r.Stderr != "" {
				t.Errorf("%s %s: export: %s", fl, overlay, r)
				continue
			}
			id := strings.TrimSpace(e.mustRun("fetch", "--insecure-options=image", out).Stdout)
			if !strings.HasPrefix(id, "sha512-") {
				t.Errorf("%s %s: fetch of the export: %q", fl, overlay, id)
			}
			r := e.run("run", "--insecure-options=image", rktFly, out, "--exec=/bin/sh", "--", "-c", check)
			if r.Code != 0 || r.Stdout != "changed\nnew\ngone-absent\nvolume-left-out\n" {
				t.Errorf("%s %s: the exported image does not hold the app's changes: %s", fl, overlay, r)
			}
			// An existing file is refused, and left as it was, unless
			// --overwrite.
			writeFile(t, out, "precious")
			if r := e.run("export", uuid, out); r.Code == 0 || !strings.Contains(r.Stderr, "already exists") || !strings.Contains(r.Stderr, "--overwrite") {
				t.Errorf("%s %s: export over an existing file: %s", fl, overlay, r)
			}
			if got, _ := os.ReadFile(out); string(got) != "precious" {
				t.Errorf("%s %s: the existing file was changed", fl, overlay)
			}
			if r := e.run("export", "--overwrite", uuid, out); r.Code != 0 {
				t.Errorf("%s %s: export --overwrite: %s", fl, overlay, r)
			}
			// Nothing of the export is left in the pod (its mount, its
			// directory), so gc removes the pod.
			e.mustRun("rm", uuid)
		}
	}
}

// export refuses a running pod in one line, and writes nothing; a pod of
// several apps needs --app; FILE must end in .aci, as in rkt.
func TestRktExportRefusesRunningPodAndNeedsAppOfSeveral(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sleeper := rktImage(t, "example.com/export-sleeper", nil, "/bin/sh", "-c", "sleep 30")
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	cmd := e.command("run", "--net=host", "--insecure-options=image", rktFly, "--uuid-file-save="+uuidFile, sleeper)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	uuid := waitRunning(t, e, uuidFile)
	out := filepath.Join(t.TempDir(), "out.aci")
	r := e.run("export", uuid, out)
	if r.Code == 0 || !strings.Contains(r.Stderr, "is running") || strings.Count(r.Stderr, "\n") != 1 {
		t.Errorf("export of a running pod: %s", r)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("export of a running pod wrote %s", out)
	}
	e.run("stop", "--force", uuid)
	cmd.Wait()

	one := rktExportImage(t, "example.com/export-one")
	two := rktImage(t, "example.com/export-two", nil, "/bin/sh", "-c", "echo two > /two")
	uuidFile = filepath.Join(t.TempDir(), "uuid")
	requireNspawn(t) // fly runs one app
	e.mustRun("run", "--insecure-options=image", rktNspawn, "--uuid-file-save="+uuidFile,
		"--volume=data,kind=host,source="+t.TempDir(), one, two)
	uuid = readTrimmed(t, uuidFile)
	if r := e.run("export", uuid, out); r.Code == 0 || !strings.Contains(r.Stderr, "--app") {
		t.Errorf("export of a pod of two apps without --app: %s", r)
	}
	if r := e.run("export", "--app=export-two", uuid, out); r.Code != 0 {
		t.Fatalf("export --app: %s", r)
	}
	if r := e.run("run", "--insecure-options=image", rktFly, out, "--exec=/bin/cat", "--", "/two"); r.Code != 0 || r.Stdout != "two\n" {
		t.Errorf("the exported second app: %s", r)
	}
	if r := e.run("export", "--app=nope", uuid, out+"2.aci"); r.Code == 0 || !strings.Contains(r.Stderr, "not found") {
		t.Errorf("export --app of an app the pod lacks: %s", r)
	}
	if r := e.run("export", "--app=export-two", uuid, filepath.Join(t.TempDir(), "out.tar")); r.Code == 0 || !strings.Contains(r.Stderr, ".aci") {
		t.Errorf("export to a file not ending in .aci: %s", r)
	}
}

// An app stopped because another app of the pod failed is recorded with
// orbit's 128+signal status: 143 when SIGTERM ended it (rkt's systemd
// units recorded the bare signal number, 15, which reads like exit(15);
// see the status page), and its own status when it handles the signal and
// exits, as in rkt. The app whose exit stopped the pod keeps its status.
func TestRktSiblingStoppedByPodExitStatus(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/siblings")
	for _, tc := range []struct {
		sibling, want string
	}{
		{"sleep 60", "app-sibling=143"},
		{"trap 'exit 0' TERM; sleep 60 & wait", "app-sibling=0"},
	} {
		uuidFile := filepath.Join(t.TempDir(), "uuid")
		r := e.run("run", "--insecure-options=image", rktNspawn, "--uuid-file-save="+uuidFile,
			aci, "--name=sibling", "--exec=/bin/sh", "--", "-c", tc.sibling, "---",
			aci, "--name=first", "--exec=/bin/sh", "--", "-c", "sleep 1; exit 3")
		if r.Code != 3 {
			t.Errorf("%s: want the pod to exit with the first app's 3: %s", tc.sibling, r)
		}
		st := e.mustRun("status", readTrimmed(t, uuidFile)).Stdout
		if !strings.Contains(st, "app-first=3\n") || !strings.Contains(st, tc.want+"\n") {
			t.Errorf("%s: want app-first=3 and %s:\n%s", tc.sibling, tc.want, st)
		}
	}
}

// run --ipc=parent under nspawn puts the pod in the host's IPC namespace,
// as rkt's did (the app and an entered command see the host's System V
// shared memory); --ipc=private and auto keep its own.
func TestRktIPCParentUnderNspawn(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	hostNS, err := os.Readlink("/proc/self/ns/ipc")
	if err != nil {
		t.Fatal(err)
	}
	key := int(time.Now().UnixNano()&0x3fffffff) | 0x1000
	id, err := unix.SysvShmGet(key, 4096, unix.IPC_CREAT|unix.IPC_EXCL|0o600)
	if err != nil {
		t.Fatalf("making a System V shared memory segment on the host: %v", err)
	}
	t.Cleanup(func() { unix.SysvShmCtl(id, unix.IPC_RMID, nil) })
	show := fmt.Sprintf("echo ns=$(readlink /proc/self/ns/ipc); awk '$1 == %d {print \"shm-seen\"}' /proc/sysvipc/shm", key)
	aci := rktImage(t, "example.com/ipcparent", nil, "/bin/sh", "-c", show)
	r := e.run("run", "--insecure-options=image", rktNspawn, "--ipc=parent", aci)
	if r.Code != 0 || !strings.Contains(r.Stdout, "ns="+hostNS+"\n") || !strings.Contains(r.Stdout, "shm-seen") {
		t.Errorf("--ipc=parent: want the host's %s and its segment: %s", hostNS, r)
	}
	for _, mode := range []string{"--ipc=private", "--ipc=auto"} {
		r := e.run("run", "--insecure-options=image", rktNspawn, mode, aci)
		if r.Code != 0 || strings.Contains(r.Stdout, "ns="+hostNS+"\n") || strings.Contains(r.Stdout, "shm-seen") || !strings.Contains(r.Stdout, "ns=ipc:") {
			t.Errorf("%s: want an IPC namespace of the pod's own: %s", mode, r)
		}
	}
	// An entered command joins the pod's namespaces, the host's IPC
	// namespace among them.
	sleeper := rktImage(t, "example.com/ipcparent-sleep", nil, "/bin/sh", "-c", "sleep 30")
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	cmd := e.command("run", "--net=host", "--insecure-options=image", rktNspawn, "--ipc=parent", "--uuid-file-save="+uuidFile, sleeper)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	uuid := waitRunning(t, e, uuidFile)
	if r := e.run("enter", uuid, "/bin/sh", "-c", show); r.Code != 0 || !strings.Contains(r.Stdout, "ns="+hostNS+"\n") || !strings.Contains(r.Stdout, "shm-seen") {
		t.Errorf("enter into an --ipc=parent pod: %s", r)
	}
	e.run("stop", "--force", uuid)
	cmd.Wait()
}

// export writes an app added to a sandbox (its rootfs a copy inside the
// sandbox's stage1 overlay) once the sandbox has stopped.
func TestRktExportSandboxApp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := rktExportImage(t, "example.com/export-added")
	uuid := appSandbox(t, e, "--volume=data,kind=host,source="+t.TempDir())
	e.mustRun("app", "add", "--insecure-options=image", uuid, aci)
	e.mustRun("app", "start", uuid, "--app=export-added")
	appWaitState(t, e, uuid, "export-added", "exited")
	e.mustRun("stop", uuid)
	e.mustRun("status", "--wait=30s", uuid)
	out := filepath.Join(t.TempDir(), "added.aci")
	if r := e.run("export", "--app=export-added", uuid, out); r.Code != 0 {
		t.Fatalf("export of a sandbox's app: %s", r)
	}
	r := e.run("run", "--insecure-options=image", rktFly, out, "--exec=/bin/sh", "--", "-c", "cat /etc/keep /made/file; test -e /etc/gone || echo gone-absent")
	if r.Code != 0 || r.Stdout != "changed\nnew\ngone-absent\n" {
		t.Errorf("the exported sandbox app: %s", r)
	}
}
