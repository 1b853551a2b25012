package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// capsFlyStatus reads the capability lines of a /proc/<pid>/status text
// printed by an app ("CapEff:\t0000...").
func capsFlyStatus(t *testing.T, out string) map[string]uint64 {
	t.Helper()
	caps := map[string]uint64{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || !strings.HasPrefix(k, "Cap") {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		if err != nil {
			t.Fatalf("capability line %q: %v", line, err)
		}
		caps[k] = n
	}
	for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if _, ok := caps[k]; !ok {
			t.Fatalf("no %s in the app's output:\n%s", k, out)
		}
	}
	return caps
}

// capsFlyOwnBounding is the test process's bounding set: what an app that
// no isolator restricts (fly) keeps as its bound.
func capsFlyOwnBounding(t *testing.T) uint64 {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	return capsFlyStatus(t, string(data))["CapBnd"]
}

// capsFlySecretVolume makes a host directory holding a root-only file and a
// root-only directory, as a volume a hostile non-root app would like to
// read and write.
func capsFlySecretVolume(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "vol")
	if err := os.MkdirAll(filepath.Join(dir, "private"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "private"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("root-only-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

const capsFlyScript = "grep ^Cap /proc/self/status; " +
	"cat /vol/secret 2>/dev/null && echo READ-SECRET; " +
	"touch /vol/private/planted 2>/dev/null && echo WROTE-PRIVATE; " +
	"id -u"

const capDACOverride = 1

// A non-root app has no effective, permitted, inheritable or ambient
// capabilities, under either flavour: it cannot read a root-only file nor
// write into a root-only directory of a volume. Its bounding set is what the
// isolators computed (fly applies none); a root app keeps the default set.
func TestHostileNonRootAppHasNoCapabilities(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/caps", "/bin/sh", "-c", capsFlyScript)
	for _, flavour := range []string{"nspawn", "fly"} {
		t.Run(flavour, func(t *testing.T) {
			if flavour == "nspawn" {
				requireNspawn(t)
			}
			vol := capsFlySecretVolume(t)
			run := func(extra ...string) (map[string]uint64, string) {
				t.Helper()
				args := []string{"run", "--insecure-options=image", "--stage1-name=" + flavour,
					"--volume=vol,kind=host,source=" + vol, aci, "--mount=volume=vol,target=/vol"}
				r := e.run(append(args, extra...)...)
				if r.Code != 0 {
					t.Fatalf("run %v: %s", extra, r)
				}
				return capsFlyStatus(t, r.Stdout), r.Stdout
			}

			root, out := run()
			if root["CapEff"]&(1<<capDACOverride) == 0 || root["CapPrm"] != root["CapEff"] {
				t.Errorf("a root app lost its default capabilities:\n%s", out)
			}
			if !strings.Contains(out, "READ-SECRET") {
				t.Errorf("a root app could not read the volume's root-only file:\n%s", out)
			}
			os.Remove(filepath.Join(vol, "private", "planted"))

			user, out := run("--user=1234", "--group=1234")
			if f := strings.Fields(out); len(f) == 0 || f[len(f)-1] != "1234" {
				t.Fatalf("the app did not run as uid 1234:\n%s", out)
			}
			for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapAmb"} {
				if user[k] != 0 {
					t.Errorf("a non-root app has %s %016x:\n%s", k, user[k], out)
				}
			}
			wantBnd := root["CapBnd"]
			if flavour == "fly" {
				wantBnd = capsFlyOwnBounding(t)
			}
			if user["CapBnd"] != wantBnd {
				t.Errorf("a non-root app's bounding set is %016x, want %016x", user["CapBnd"], wantBnd)
			}
			if strings.Contains(out, "READ-SECRET") {
				t.Errorf("a non-root app read a root-only 0600 file of a volume:\n%s", out)
			}
			if strings.Contains(out, "WROTE-PRIVATE") {
				t.Errorf("a non-root app wrote into a root-only 0700 directory of a volume:\n%s", out)
			}
			if _, err := os.Stat(filepath.Join(vol, "private", "planted")); err == nil {
				t.Errorf("the non-root app's file is in the root-only directory")
			}

			if flavour == "nspawn" {
				// --caps-retain bounds a non-root app; it grants nothing.
				user, out = run("--user=1234", "--group=1234", "--caps-retain=CAP_DAC_OVERRIDE,CAP_KILL")
				want := uint64(1<<capDACOverride | 1<<5)
				if user["CapBnd"] != want || user["CapEff"] != 0 || user["CapPrm"] != 0 || user["CapAmb"] != 0 || user["CapInh"] != 0 {
					t.Errorf("--caps-retain for a non-root app: want bound %016x and nothing else:\n%s", want, out)
				}
				if strings.Contains(out, "READ-SECRET") {
					t.Errorf("--caps-retain=CAP_DAC_OVERRIDE gave a non-root app the capability:\n%s", out)
				}
				root, out = run("--caps-retain=CAP_DAC_OVERRIDE,CAP_KILL")
				if root["CapEff"] != want || root["CapBnd"] != want {
					t.Errorf("--caps-retain for a root app: want %016x effective and bound:\n%s", want, out)
				}
			}
		})
	}
}

// capsFlyStart starts a pod in the background and returns its UUID once it
// runs; the pod is force-stopped at the end of the test.
func capsFlyStart(t *testing.T, e *env, flavour string, args ...string) string {
	t.Helper()
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	cmd := e.command(append([]string{"run", "--insecure-options=image", "--stage1-name=" + flavour, "--uuid-file-save=" + uuidFile}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	uuid := waitRunning(t, e, uuidFile)
	t.Cleanup(func() { e.run("stop", "--force", uuid) })
	return uuid
}

// capsFlyPodManifest writes a pod manifest of one app named name, with no
// app section: everything comes from the image.
func capsFlyPodManifest(t *testing.T, e *env, name, aci string) string {
	t.Helper()
	id := strings.TrimSpace(e.mustRun("fetch", "--full", "--insecure-options=image", aci).Stdout)
	pm, err := json.Marshal(map[string]any{
		"acKind": "PodManifest", "acVersion": "0.8.11",
		"apps": []map[string]any{{"name": name, "image": map[string]any{"id": id}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pod.json")
	if err := os.WriteFile(path, pm, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// `orbit enter` runs its command as the app's user, taken from the image
// when the pod manifest has no app section, and with the app's (empty)
// capabilities.
func TestHostileEnterRunsAsTheAppsUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := imageManifest("example.com/user1234", "/bin/sh", "-c", "sleep 60")
	m["app"].(map[string]any)["user"] = "1234"
	m["app"].(map[string]any)["group"] = "1234"
	aci := writeACI(t, filepath.Join(t.TempDir(), "user1234.aci"), busyboxRootfs(t), m)
	podManifest := capsFlyPodManifest(t, e, "user1234", aci)
	for _, tc := range []struct {
		name, flavour string
		args          []string
	}{
		{"nspawn", "nspawn", []string{aci}},
		{"nspawn-user-flag", "nspawn", []string{busyboxACI(t, "example.com/sleeper", "/bin/sh", "-c", "sleep 60"), "--user=1234", "--group=1234"}},
		{"nspawn-pod-manifest", "nspawn", []string{"--pod-manifest=" + podManifest}},
		{"fly", "fly", []string{aci}},
		{"fly-pod-manifest", "fly", []string{"--pod-manifest=" + podManifest}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.flavour == "nspawn" {
				requireNspawn(t)
			}
			uuid := capsFlyStart(t, e, tc.flavour, tc.args...)
			r := e.mustRun("enter", uuid, "/bin/sh", "-c", "grep ^Cap /proc/self/status; echo uid=$(id -u) gid=$(id -g)")
			if !strings.Contains(r.Stdout, "uid=1234 gid=1234") {
				t.Fatalf("enter did not run as the app's user 1234:\n%s", r)
			}
			caps := capsFlyStatus(t, r.Stdout)
			for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapAmb"} {
				if caps[k] != 0 {
					t.Errorf("the entered command of a non-root app has %s %016x", k, caps[k])
				}
			}
		})
	}
}

// A pod manifest app with no app section, whose image has none either, has
// nothing to run: it is refused with one line before any pod is made (fly
// used to panic on it).
func TestHostilePodManifestAppWithoutApp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	m := imageManifest("example.com/noapp")
	delete(m, "app")
	aci := writeACI(t, filepath.Join(t.TempDir(), "noapp.aci"), busyboxRootfs(t), m)
	path := capsFlyPodManifest(t, e, "noapp", aci)
	for _, flavour := range []string{"fly", "nspawn"} {
		r := e.run("run", "--insecure-options=image", "--stage1-name="+flavour, "--pod-manifest="+path)
		if r.Code == 0 || r.Code == 2 || strings.Contains(r.Stderr, "panic") {
			t.Fatalf("%s: an app with nothing to run: %s", flavour, r)
		}
		if strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 || !strings.Contains(r.Stderr, "noapp") {
			t.Errorf("%s: want one line naming the app: %q", flavour, r.Stderr)
		}
	}
	pods, _ := filepath.Glob(filepath.Join(e.Dir, "pods", "*", "*"))
	if len(pods) != 0 {
		t.Errorf("refused runs left pods behind: %v", pods)
	}
}

// capsFlyMarked lists the live processes whose command line holds marker
// as an argument.
func capsFlyMarked(marker string) []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, d := range entries {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for _, arg := range strings.Split(string(data), "\x00") {
			if arg == marker && alive(pid) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// capsFlyWaitGone waits for every process holding marker to end.
func capsFlyWaitGone(t *testing.T, marker string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for len(capsFlyMarked(marker)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if left := capsFlyMarked(marker); len(left) > 0 {
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		t.Fatalf("processes of the pod survived: %v", left)
	}
}

func capsFlyWaitExited(t *testing.T, e *env, uuid string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := e.mustRun("status", uuid).Stdout
		if strings.Contains(st, "state=exited") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pod did not become exited: %s", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Every process of a fly pod ends with it: stop and stop --force end the
// app's children too, even ones that ignore SIGTERM, even after stage1 was
// killed, and the pod becomes exited.
func TestHostileFlyStopEndsEveryProcess(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tc := range []struct {
		name   string
		script string // %s is the marker
		stop   []string
		kill1  bool // SIGKILL stage1 first
	}{
		// The whole app ignores SIGTERM: stop does nothing, --force ends all.
		{"force", `trap "" TERM; sleep %[1]s & sleep %[1]s & wait`, []string{"--force"}, false},
		// The app ends on SIGTERM; its child, which ignores it, goes too.
		{"term", `(trap "" TERM; sleep %[1]s) & sleep %[1]s; wait`, nil, false},
		// stage1 is gone and only the app's children are left.
		{"stage1-killed", `trap "" TERM; (sleep %[1]s &) ; sleep %[1]s & wait`, []string{"--force"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A number no other process on the machine has as an argument
			// (sleep takes it), whatever runs beside this test.
			marker := strconv.FormatInt(1_000_000_000+time.Now().UnixNano()%1_000_000_000, 10)
			aci := busyboxACI(t, "example.com/stubborn-"+tc.name, "/bin/sh", "-c", fmt.Sprintf(tc.script, marker))
			uuid := capsFlyStart(t, e, "fly", aci)
			deadline := time.Now().Add(20 * time.Second)
			for len(capsFlyMarked(marker)) < 2 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if n := len(capsFlyMarked(marker)); n < 2 {
				t.Fatalf("the app's children did not start (%d)", n)
			}
			if tc.kill1 {
				syscall.Kill(stage1Process(t, "fly", uuid), syscall.SIGKILL)
				time.Sleep(300 * time.Millisecond)
				if len(capsFlyMarked(marker)) == 0 {
					t.Fatal("nothing of the app outlived its stage1; the case tests nothing")
				}
			}
			if tc.name == "force" {
				e.mustRun("stop", uuid)
				time.Sleep(300 * time.Millisecond)
				if len(capsFlyMarked(marker)) == 0 {
					t.Fatal("the app that ignores SIGTERM ended on stop")
				}
			}
			e.mustRun(append([]string{"stop"}, append(tc.stop, uuid)...)...)
			capsFlyWaitGone(t, marker, 15*time.Second)
			capsFlyWaitExited(t, e, uuid)
		})
	}
}
