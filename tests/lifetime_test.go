package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// alive reports whether a process exists and is not a zombie.
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z'
}

func readPidFile(t *testing.T, path string) int {
	t.Helper()
	n, err := strconv.Atoi(readTrimmed(t, path))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// stage1Process finds the stage1 run entrypoint process of a pod.
func stage1Process(t *testing.T, flavour, uuid string) int {
	t.Helper()
	out, _ := exec.Command("pgrep", "-f", flavour+"/run .*"+uuid).Output()
	f := strings.Fields(string(out))
	if len(f) != 1 {
		t.Fatalf("stage1 process of %s: %q", uuid, out)
	}
	n, _ := strconv.Atoi(f[0])
	return n
}

// A killed stage1 must not leave the pod's processes running behind a pod
// that reads "exited": under fly the app dies with stage1; under nspawn
// the container keeps the pod lock and stays a running, stoppable pod.
func TestKilledStage1(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/long", "/bin/sh", "-c", "sleep 60")
	for _, flavour := range []string{"fly", "nspawn"} {
		t.Run(flavour, func(t *testing.T) {
			if flavour == "nspawn" {
				requireNspawn(t)
			}
			uuidFile := filepath.Join(t.TempDir(), "uuid")
			cmd := e.command("run", "--insecure-options=image", "--stage1-name="+flavour, "--uuid-file-save="+uuidFile, aci, "--user=65534", "--group=65534")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
			uuid := waitRunning(t, e, uuidFile)
			podDir := filepath.Join(e.Dir, "pods", "run", uuid)
			syscall.Kill(stage1Process(t, flavour, uuid), syscall.SIGKILL)
			cmd.Wait()
			switch flavour {
			case "fly":
				app := readPidFile(t, filepath.Join(podDir, "pid"))
				deadline := time.Now().Add(10 * time.Second)
				for alive(app) && time.Now().Before(deadline) {
					time.Sleep(50 * time.Millisecond)
				}
				if alive(app) {
					t.Fatalf("the app (%d) outlived its killed stage1", app)
				}
				// The dead app stays in the pod's cgroup until whoever
				// inherited it reaps it, which a loaded machine may put
				// off for a moment: the pod becomes exited then.
				st := e.mustRun("status", uuid).Stdout
				for deadline := time.Now().Add(10 * time.Second); !strings.Contains(st, "state=exited") && time.Now().Before(deadline); {
					time.Sleep(50 * time.Millisecond)
					st = e.mustRun("status", uuid).Stdout
				}
				if !strings.Contains(st, "state=exited") {
					t.Fatalf("status: %s", st)
				}
			case "nspawn":
				if st := e.mustRun("status", uuid).Stdout; !strings.Contains(st, "state=running") {
					t.Fatalf("the pod should still be running with its container: %s", st)
				}
				e.mustRun("stop", uuid)
				e.mustRun("status", "--wait", uuid)
				if st := e.mustRun("status", uuid).Stdout; !strings.Contains(st, "state=exited") || !strings.Contains(st, "app-long=143") {
					t.Fatalf("after stop: %s", st)
				}
			}
		})
	}
}
