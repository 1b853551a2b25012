package tests

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// An app cannot pass itself off as another to `orbit enter`: neither its
// image's environment nor anything it controls decides where enter lands.
func TestNspawnEnterCannotBeRedirected(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	victimRoot := busyboxRootfs(t)
	writeFile(t, filepath.Join(victimRoot, "VICTIM"), "v\n")
	victim := writeACI(t, filepath.Join(t.TempDir(), "victim.aci"), victimRoot, imageManifest("example.com/victim", "/bin/sh", "-c", "sleep 30"))
	evilRoot := busyboxRootfs(t)
	writeFile(t, filepath.Join(evilRoot, "EVIL"), "e\n")
	m := imageManifest("example.com/evil", "/bin/sh", "-c", "echo evil-name=$AC_APP_NAME; sleep 30")
	m["app"].(map[string]any)["environment"] = []map[string]string{{"name": "AC_APP_NAME", "value": "victim"}}
	evil := writeACI(t, filepath.Join(t.TempDir(), "evil.aci"), evilRoot, m)

	uuidFile := filepath.Join(t.TempDir(), "uuid")
	// The impostor starts first, so a search by environment would find it.
	cmd := e.command("run", "--insecure-options=image", "--uuid-file-save="+uuidFile, evil, "---", victim)
	var out syncBuffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	uuid := waitRunning(t, e, uuidFile)
	r := e.mustRun("enter", "--app=victim", uuid, "/bin/sh", "-c", "test -f /VICTIM && echo in-victim; test -f /EVIL && echo in-evil; echo name=$AC_APP_NAME")
	if !strings.Contains(r.Stdout, "in-victim") || strings.Contains(r.Stdout, "in-evil") || !strings.Contains(r.Stdout, "name=victim") {
		t.Fatalf("enter --app=victim landed elsewhere: %s", r)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "evil-name=") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "evil-name=evil") {
		t.Errorf("an image set its own AC_APP_NAME: %q", out.String())
	}
	e.mustRun("stop", "--force", uuid)
}

// Descriptors orbit inherits do not reach the app, whatever the image's
// environment says about socket activation.
func TestInheritedDescriptorsDoNotReachApps(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := imageManifest("example.com/fds", "/bin/sh", "-c", "ls /proc/self/fd | tr '\\n' ' '")
	m["app"].(map[string]any)["environment"] = []map[string]string{{"name": "LISTEN_FDS", "value": "100"}}
	aci := writeACI(t, filepath.Join(t.TempDir(), "fds.aci"), busyboxRootfs(t), m)
	secret, err := os.Open("/etc/hostname")
	if err != nil {
		t.Fatal(err)
	}
	defer secret.Close()
	for _, flavour := range []string{"fly", "nspawn"} {
		cmd := e.command("run", "--insecure-options=image", "--stage1-name="+flavour, aci)
		// orbit gets the file as descriptors 3 to 9.
		cmd.ExtraFiles = []*os.File{secret, secret, secret, secret, secret, secret, secret}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", flavour, err)
		}
		for _, fd := range strings.Fields(string(out)) {
			if n, _ := strconv.Atoi(fd); n >= 5 {
				t.Errorf("%s: the app holds descriptor %s (open: %s)", flavour, fd, out)
			}
		}
	}
}

// Under fly the pod lock goes with the app's processes: a killed stage1
// takes the app with it, and what the app started keeps the pod running
// (so gc does not sweep it) until it ends.
func TestFlyPodLivesWithItsProcesses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/forks", "/bin/sh", "-c", "sleep 60; true")
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	cmd := e.command("run", "--insecure-options=image", "--stage1-name=fly", "--uuid-file-save="+uuidFile, aci)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	uuid := waitRunning(t, e, uuidFile)
	podDir := filepath.Join(e.Dir, "pods", "run", uuid)
	sh := readPidFile(t, filepath.Join(podDir, "pid"))
	var sleeper int
	for deadline := time.Now().Add(20 * time.Second); sleeper == 0 && time.Now().Before(deadline); {
		if data, err := os.ReadFile("/proc/" + strconv.Itoa(sh) + "/task/" + strconv.Itoa(sh) + "/children"); err == nil {
			if f := strings.Fields(string(data)); len(f) == 1 {
				sleeper, _ = strconv.Atoi(f[0])
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if sleeper == 0 {
		t.Fatal("the app's child did not start")
	}
	syscall.Kill(stage1Process(t, "fly", uuid), syscall.SIGKILL)
	cmd.Wait()
	e.mustRun("gc", "--grace-period=0s")
	if st := e.mustRun("status", uuid).Stdout; !strings.Contains(st, "state=running") {
		t.Fatalf("the pod's remaining process should keep it running: %s", st)
	}
	syscall.Kill(sleeper, syscall.SIGKILL)
	for deadline := time.Now().Add(10 * time.Second); alive(sleeper) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	if st := e.mustRun("status", uuid).Stdout; !strings.Contains(st, "state=exited") {
		t.Fatalf("after its last process: %s", st)
	}
}
