package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The tests here check what the fast run path promises instead of
// durability: a pod's files are renamed into place but never fsynced
// (Documentation/design.md, "What is durable"), so a killed orbit must
// still leave pods that list and gc understand, and a run must not flush
// the disk or write the image index at all.

// speedTrueImage fetches a busybox image whose app is /bin/true into a
// fresh installation and returns the installation and the image ID.
func speedTrueImage(t *testing.T) (*env, string) {
	t.Helper()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/speed-true", "/bin/true")
	id := strings.TrimSpace(e.mustRun("fetch", "--full", "--insecure-options=image", aci).Stdout)
	return e, id
}

// speedPodsLeft lists the pod directories left in every state directory.
func speedPodsLeft(t *testing.T, e *env) []string {
	t.Helper()
	left, err := filepath.Glob(filepath.Join(e.Dir, "pods", "*", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return left
}

// speedMountsBelow lists the mount points below dir.
func speedMountsBelow(t *testing.T, dir string) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	return points
}

// speedCheckCollectable checks that list and status handle every pod left
// in e, and that one gc removes them all with their mounts.
func speedCheckCollectable(t *testing.T, e *env, what string) {
	t.Helper()
	r := e.run("list", "--format=json")
	if r.Code != 0 {
		t.Fatalf("%s: list: %s", what, r)
	}
	var pods []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &pods); err != nil {
		t.Fatalf("%s: list --format=json: %v\n%s", what, err, r.Stdout)
	}
	for _, p := range pods {
		switch p.State {
		case "embryo", "preparing", "aborted prepare", "prepared", "exited", "exited garbage", "garbage":
		default:
			t.Fatalf("%s: pod %s is %q after its orbit was killed", what, p.Name, p.State)
		}
		if r := e.run("status", p.Name); r.Code != 0 {
			t.Fatalf("%s: status %s: %s", what, p.Name, r)
		}
	}
	if r := e.run("gc", "--grace-period=0s", "--expire-prepared=0s"); r.Code != 0 {
		t.Fatalf("%s: gc: %s", what, r)
	}
	if left := speedPodsLeft(t, e); len(left) > 0 {
		t.Fatalf("%s: gc left %v", what, left)
	}
	if m := speedMountsBelow(t, e.Dir); len(m) > 0 {
		t.Fatalf("%s: gc left mounts %v", what, m)
	}
}

// TestSpeedCrashLeavesPodsGCRecognises kills orbit with SIGKILL at each
// rename and mkdir of `prepare` and of `run` (stage0 and, for run, the fly
// stage1 it becomes), using strace's fault injection to pick the point,
// and checks after each that list, status and gc handle what was left.
func TestSpeedCrashLeavesPodsGCRecognises(t *testing.T) {
	strace := requireTool(t, "strace", "strace")
	e, id := speedTrueImage(t)
	e.mustRun("run", "--insecure-options=image", "--stage1-name=fly", id) // stage1 imported, trees rendered
	speedCheckCollectable(t, e, "warm-up")
	calls := "rename,renameat,renameat2,mkdir,mkdirat"
	for _, cmd := range [][]string{
		{"prepare", "--insecure-options=image", "--stage1-name=fly", id},
		{"run", "--insecure-options=image", "--stage1-name=fly", id},
	} {
		killed := 0
		for n := 1; ; n++ {
			if n > 200 {
				t.Fatalf("%s was still killed at call %d", cmd[0], n)
			}
			args := append([]string{"-f", "-qq", "-o", "/dev/null", "-e", "trace=" + calls,
				"-e", "inject=" + calls + ":signal=KILL:when=" + strconv.Itoa(n), binary}, e.args(cmd...)...)
			out, err := exec.Command(strace, args...).CombinedOutput()
			what := fmt.Sprintf("%s killed at rename or mkdir %d", cmd[0], n)
			if err == nil {
				// Past the last such call: the command completed.
				speedCheckCollectable(t, e, cmd[0]+" not killed")
				break
			}
			if !strings.Contains(string(out), "+++ killed by SIGKILL") && !strings.Contains(err.Error(), "killed") && !strings.Contains(err.Error(), "exit status 137") {
				t.Fatalf("%s: %v\n%s", what, err, out)
			}
			killed++
			speedCheckCollectable(t, e, what)
		}
		if killed < 5 {
			t.Fatalf("%s was killed at only %d points", cmd[0], killed)
		}
	}
}

// TestSpeedPowerLossLeavesPodsGCRemoves empties every file of a prepared
// and two exited pods (fly and nspawn), as a power loss may leave files
// that were renamed into place but never flushed, and checks that list
// still works and gc removes the pods and their mounts.
func TestSpeedPowerLossLeavesPodsGCRemoves(t *testing.T) {
	e, id := speedTrueImage(t)
	e.mustRun("prepare", "--insecure-options=image", "--stage1-name=fly", id)
	e.mustRun("run", "--insecure-options=image", "--stage1-name=fly", id)
	if nspawnAvailable() {
		e.mustRun("run", "--insecure-options=image", id)
	}
	pods := speedPodsLeft(t, e)
	if len(pods) < 2 {
		t.Fatalf("pods: %v", pods)
	}
	emptied := 0
	for _, pod := range pods {
		files, _ := filepath.Glob(filepath.Join(pod, "*"))
		for _, f := range files {
			if fi, err := os.Lstat(f); err == nil && fi.Mode().IsRegular() {
				if err := os.Truncate(f, 0); err != nil {
					t.Fatal(err)
				}
				emptied++
			}
		}
	}
	if emptied < 6 {
		t.Fatalf("emptied only %d files", emptied)
	}
	speedCheckCollectable(t, e, "after emptying the pods' files")
}

// nspawnAvailable reports whether systemd-nspawn is installed.
func nspawnAvailable() bool {
	_, err := exec.LookPath("systemd-nspawn")
	return err == nil
}

// TestSpeedRunFlushesNothing checks the run path's side of the rule: a run
// of a stored image makes no fsync or fdatasync at all (stage0, stage1
// and the launcher), and leaves the image index untouched (an image's last
// use goes to its lease file), while image list still shows the new use.
func TestSpeedRunFlushesNothing(t *testing.T) {
	strace := requireTool(t, "strace", "strace")
	e, id := speedTrueImage(t)
	e.mustRun("run", "--insecure-options=image", "--stage1-name=fly", id) // warm
	index := filepath.Join(e.Dir, "cas", "index.db")
	before, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	lastUsed := func() int64 {
		var images []struct {
			ID       string `json:"id"`
			LastUsed int64  `json:"last_used_time"`
		}
		out := e.mustRun("image", "list", "--format=json").Stdout
		if err := json.Unmarshal([]byte(out), &images); err != nil {
			t.Fatalf("image list --format=json: %v\n%s", err, out)
		}
		for _, img := range images {
			if img.ID == id {
				return img.LastUsed
			}
		}
		t.Fatalf("image %s not in image list: %s", id, out)
		return 0
	}
	first := lastUsed()
	log := filepath.Join(t.TempDir(), "strace")
	args := append([]string{"-f", "-qq", "-o", log, "-e", "trace=fsync,fdatasync,sync_file_range,syncfs,sync", binary},
		e.args("run", "--insecure-options=image", "--stage1-name=fly", id)...)
	if out, err := exec.Command(strace, args...).CombinedOutput(); err != nil {
		t.Fatalf("run under strace: %v\n%s", err, out)
	}
	trace, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(trace), "sync"); n != 0 {
		t.Fatalf("a run flushed the disk %d times:\n%s", n, trace)
	}
	after, err := os.ReadFile(index)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Fatal("a run wrote the image index")
	}
	if last := lastUsed(); last <= first {
		t.Fatalf("image list shows no later use after a run: %d, before it %d", last, first)
	}
}
