package tests

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// thirdPartyStage1 makes a stage1 image the way an outside implementer
// would: busybox and shell scripts named by the rkt entrypoint annotations.
// Its run entrypoint records what stage0 handed it and exits 42.
func thirdPartyStage1(t *testing.T, dir string) string {
	t.Helper()
	root := busyboxRootfs(t)
	writeFile(t, filepath.Join(root, "ex/run"), `#!/bin/sh
# Record the contract as seen: arguments, cwd, the lock descriptor.
{
  echo "args=$*"
  echo "cwd=$(pwd)"
  echo "lockfd=$RKT_LOCK_FD"
  echo "lockdir=$(readlink /proc/$$/fd/$RKT_LOCK_FD)"
  test -f pod && echo "podmanifest=yes"
  test -d stage1/rootfs/opt/stage2 && echo "stage2dir=yes"
} > "$(pwd)/contract.txt"
echo $$ > pid
exit 42
`)
	writeFile(t, filepath.Join(root, "ex/gc"), "#!/bin/sh\necho \"gc $*\" >> "+filepath.Join(dir, "gc.log")+"\n")
	for _, f := range []string{"ex/run", "ex/gc"} {
		os.Chmod(filepath.Join(root, f), 0o755)
	}
	m := map[string]any{
		"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/stage1-shell",
		"labels": []map[string]string{{"name": "version", "value": "0.1"}, {"name": "os", "value": "linux"}, {"name": "arch", "value": appcArch()}},
		"annotations": []map[string]string{
			{"name": "coreos.com/rkt/stage1/run", "value": "/ex/run"},
			{"name": "coreos.com/rkt/stage1/gc", "value": "/ex/gc"},
		},
	}
	return writeACI(t, filepath.Join(dir, "stage1-shell.aci"), root, m)
}

func TestThirdPartyStage1Contract(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()
	s1 := thirdPartyStage1(t, dir)
	app := busyboxACI(t, "example.com/payload")
	uuidFile := filepath.Join(dir, "uuid")
	r := e.run("run", "--insecure-options=image", "--stage1-path="+s1, "--uuid-file-save="+uuidFile, "--hostname=ignored-by-v1", app)
	if r.Code != 42 {
		t.Fatalf("orbit run should exit with stage1's status 42: %s", r)
	}
	uuid := readTrimmed(t, uuidFile)
	contract := readTrimmed(t, filepath.Join(e.Dir, "pods", "run", uuid, "contract.txt"))
	podDir := filepath.Join(e.Dir, "pods", "run", uuid)
	for _, want := range []string{
		// Interface version 1: --local-config, no --hostname, the UUID last.
		"args=--local-config=" + e.LocalCfg + " " + uuid + "\n",
		"cwd=" + podDir,
		"lockdir=" + podDir,
		"podmanifest=yes",
		"stage2dir=yes",
	} {
		if !strings.Contains(contract+"\n", want) {
			t.Errorf("stage1 saw %q, want %q", contract, want)
		}
	}
	if !regexp.MustCompile(`lockfd=\d+`).MatchString(contract) {
		t.Errorf("RKT_LOCK_FD not set: %s", contract)
	}
	// The stage1's gc entrypoint runs when the pod is collected.
	gcLog := filepath.Join(dir, "gc.log")
	e.mustRun("gc", "--grace-period=0s")
	if got := readTrimmed(t, gcLog); got != "gc "+uuid {
		t.Errorf("stage1 gc entrypoint got %q", got)
	}

	// The same image by hash, by URL, from the stage1 images directory.
	id := strings.TrimSpace(e.mustRun("fetch", "--full", "--insecure-options=image", s1).Stdout)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go srv.Serve(ln)
	defer srv.Close()
	imagesDir := filepath.Join(e.SystemCfg, "stage1-images")
	os.MkdirAll(imagesDir, 0o755)
	data, _ := os.ReadFile(s1)
	os.WriteFile(filepath.Join(imagesDir, "stage1-shell.aci"), data, 0o644)
	for _, flag := range []string{
		"--stage1-hash=" + id[:20],
		"--stage1-url=" + fmt.Sprintf("http://%s/stage1-shell.aci", ln.Addr()),
		"--stage1-from-dir=stage1-shell.aci",
		"--stage1-name=example.com/stage1-shell:0.1",
	} {
		if r := e.run("run", "--insecure-options=image", flag, app); r.Code != 42 {
			t.Errorf("%s: %s", flag, r)
		}
	}
	// Unsigned stage1 images are refused like any other image.
	if r := e.run("run", "--stage1-path="+s1, app); r.Code == 0 || !strings.Contains(r.Stderr, "--insecure-options=image") {
		t.Errorf("an unsigned stage1 image was accepted: %s", r)
	}
	if r := e.run("run", "--insecure-options=image", "--stage1-name=fly", "--stage1-hash="+id, app); r.Code == 0 || !strings.Contains(r.Stderr, "at most one") {
		t.Errorf("two stage1 flags: %s", r)
	}
}

func readTrimmed(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

func TestNspawnPerAppFlags(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/flags")
	script := `echo cwd=$(pwd) x=$X; cat /proc/self/oom_score_adj; cat /sys/fs/cgroup/cpu/$AC_APP_NAME/cpu.cfs_quota_us /sys/fs/cgroup/cpu/$AC_APP_NAME/cpu.shares; touch /rootfs-write && echo rootfs-writable; id -u; id -G`
	r, _ := e.nsRun(aci, "--name=tuned", "--working-dir=/tmp", "--environment=X=from-flag", "--oom-score-adj=300",
		"--cpu=250m", "--cpu-shares=512", "--readonly-rootfs", "--user=user", "--group=user", "--supplementary-gids=2000",
		"--exec=/bin/sh", "--", "-c", script)
	for _, want := range []string{"cwd=/tmp x=from-flag", "\n300\n", "\n25000\n", "\n512\n", "\n1000\n", "1000 2000"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q: %s", want, r)
		}
	}
	if strings.Contains(r.Stdout, "rootfs-writable") {
		t.Errorf("--readonly-rootfs left the root writable: %s", r)
	}
}

func TestImageRemovalKeepsRunningPod(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// The app reads its image's files only once told to, after the image
	// is gone: a fixed sleep would let a slow machine read them first.
	aci := busyboxACI(t, "example.com/busy", "/bin/sh", "-c", "echo started; for i in $(seq 600); do test -f /tmp/go && break; sleep 0.05; done; cat /bin/busybox > /dev/null && echo still-readable")
	id := strings.TrimSpace(e.mustRun("fetch", "--full", "--insecure-options=image", aci).Stdout)
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	cmd := e.command("run", "--insecure-options=image", "--stage1-name=fly", "--uuid-file-save="+uuidFile, id)
	var out syncBuffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	uuid := waitRunning(t, e, uuidFile)
	e.mustRun("image", "rm", id)
	e.mustRun("image", "gc", "--grace-period=0s")
	e.mustRun("enter", uuid, "/bin/touch", "/tmp/go")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil || !strings.Contains(out.String(), "still-readable") {
			t.Fatalf("the pod broke when its image was removed: %v %q", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("pod did not finish")
	}
	// Once the pod is collected, the tree goes too.
	e.mustRun("gc", "--grace-period=0s")
	e.mustRun("image", "gc", "--grace-period=0s")
	trees, _ := os.ReadDir(filepath.Join(e.Dir, "cas", "trees"))
	var left []string
	for _, tr := range trees {
		left = append(left, tr.Name())
	}
	var list []struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	json.Unmarshal([]byte(e.mustRun("image", "list", "--format=json").Stdout), &list)
	for _, img := range list {
		if img.ID == id {
			t.Errorf("removed image still listed")
		}
	}
	// Only the stage1 image's tree may remain (its image was not removed).
	if len(left) > 1 {
		t.Errorf("trees left after the pod was collected: %v", left)
	}
}

// TestStage1GCFailureKeepsPod: what a stage1 made outside the pod
// directory is recorded inside it, so a pod whose stage1 gc entrypoint
// fails is kept, and a later gc runs the entrypoint again.
func TestStage1GCFailureKeepsPod(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()
	root := busyboxRootfs(t)
	ok := filepath.Join(dir, "gc-may-succeed")
	writeFile(t, filepath.Join(root, "ex/run"), "#!/bin/sh\necho $$ > pid\nexit 0\n")
	writeFile(t, filepath.Join(root, "ex/gc"), "#!/bin/sh\necho \"gc $*\" >> "+filepath.Join(dir, "gc.log")+"\ntest -e "+ok+"\n")
	for _, f := range []string{"ex/run", "ex/gc"} {
		os.Chmod(filepath.Join(root, f), 0o755)
	}
	m := map[string]any{
		"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/stage1-failing-gc",
		"labels": []map[string]string{{"name": "version", "value": "0.1"}, {"name": "os", "value": "linux"}, {"name": "arch", "value": appcArch()}},
		"annotations": []map[string]string{
			{"name": "coreos.com/rkt/stage1/run", "value": "/ex/run"},
			{"name": "coreos.com/rkt/stage1/gc", "value": "/ex/gc"},
		},
	}
	s1 := writeACI(t, filepath.Join(dir, "stage1.aci"), root, m)
	uuidFile := filepath.Join(dir, "uuid")
	e.mustRun("run", "--insecure-options=image", "--stage1-path="+s1, "--uuid-file-save="+uuidFile, busyboxACI(t, "example.com/payload"))
	uuid := readTrimmed(t, uuidFile)

	r := e.run("gc", "--grace-period=0s")
	if r.Code == 0 || !strings.Contains(r.Stderr, "stage1 gc failed") || !strings.Contains(r.Stderr, uuid) {
		t.Fatalf("gc with a failing stage1 gc: %s", r)
	}
	if out := e.mustRun("list", "--no-legend").Stdout; !strings.Contains(out, uuid[:8]) {
		t.Fatalf("the pod went although its stage1 gc failed: %q", out)
	}
	writeFile(t, ok, "")
	e.mustRun("gc", "--grace-period=0s")
	if out := e.mustRun("list", "--no-legend").Stdout; strings.Contains(out, uuid[:8]) {
		t.Fatalf("gc left the pod once its stage1 gc succeeded: %q", out)
	}
	if got := readTrimmed(t, filepath.Join(dir, "gc.log")); got != "gc "+uuid+"\ngc "+uuid {
		t.Errorf("the stage1 gc entrypoint ran %q, want twice", got)
	}
	if out, _ := exec.Command("grep", filepath.Join(e.Dir, "pods"), "/proc/self/mountinfo").Output(); len(out) > 0 {
		t.Errorf("mounts left below the pods: %s", out)
	}
}
