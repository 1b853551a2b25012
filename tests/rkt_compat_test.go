package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	ocitypes "github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sys/unix"
)

// Functional tests of behaviours orbit shares with rkt 1.30, each named
// after the behaviour; helpers are prefixed rkt.

// rktImage writes a busybox ACI whose manifest edit changes first.
func rktImage(t *testing.T, name string, edit func(m map[string]any), exec ...string) string {
	t.Helper()
	m := imageManifest(name, exec...)
	if edit != nil {
		edit(m)
	}
	return writeACI(t, filepath.Join(t.TempDir(), "image.aci"), busyboxRootfs(t), m)
}

// rktApp returns the app section of an image manifest.
func rktApp(m map[string]any) map[string]any { return m["app"].(map[string]any) }

// rktFlavours are the stage1 flavours a behaviour is checked in.
func rktFlavours(t *testing.T) []string {
	requireNspawn(t)
	return []string{rktFly, rktNspawn}
}

const (
	rktFly    = "--stage1-name=coreos.com/rkt/stage1-fly:1.30.0"
	rktNspawn = "--stage1-name=coreos.com/rkt/stage1-coreos:1.30.0"
)

// rktStatusField returns the value of a field of /proc/self/status output.
func rktStatusField(out, name string) string {
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// no_new_privs is set only when the os/linux/no-new-privileges isolator
// says so: a non-root app under the default seccomp filter can still use
// set-user-ID programs, and holds no capability for it.
func TestRktNoNewPrivsOnlyWhenIsolatorSaysSo(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	show := "grep -E '^(NoNewPrivs|Seccomp|Cap...):' /proc/self/status"
	plain := rktImage(t, "example.com/nnp-off", func(m map[string]any) {
		rktApp(m)["user"], rktApp(m)["group"] = "1000", "1000"
	}, "/bin/sh", "-c", show)
	on := rktImage(t, "example.com/nnp-on", func(m map[string]any) {
		rktApp(m)["user"], rktApp(m)["group"] = "1000", "1000"
		rktApp(m)["isolators"] = []map[string]any{{"name": "os/linux/no-new-privileges", "value": true}}
	}, "/bin/sh", "-c", show)
	// Isolators are applied by the nspawn flavour only (fly, like rkt's,
	// runs apps with the host's privileges, and without no_new_privs).
	if r := e.run("run", "--insecure-options=image", rktFly, plain); r.Code != 0 || rktStatusField(r.Stdout, "NoNewPrivs") != "0" {
		t.Errorf("fly: want NoNewPrivs 0: %s", r)
	}
	requireNspawn(t)
	for _, fl := range []string{rktNspawn} {
		r := e.run("run", "--insecure-options=image", fl, plain)
		if r.Code != 0 || rktStatusField(r.Stdout, "NoNewPrivs") != "0" || rktStatusField(r.Stdout, "Seccomp") != "2" {
			t.Errorf("%s: a non-root app with the default filter and no isolator: want NoNewPrivs 0 under seccomp: %s", fl, r)
		}
		for _, f := range []string{"CapInh", "CapPrm", "CapEff", "CapAmb"} {
			if got := rktStatusField(r.Stdout, f); got != "0000000000000000" {
				t.Errorf("%s: the non-root app holds %s %s: %s", fl, f, got, r)
			}
		}
		r = e.run("run", "--insecure-options=image", fl, on)
		if r.Code != 0 || rktStatusField(r.Stdout, "NoNewPrivs") != "1" {
			t.Errorf("%s: os/linux/no-new-privileges=true: want NoNewPrivs 1: %s", fl, r)
		}
		// A root app with the default capabilities (no CAP_SYS_ADMIN) keeps
		// no CAP_SYS_ADMIN from the filter's installation.
		r = e.run("run", "--insecure-options=image", fl, plain, "--user=0", "--group=0")
		if eff := rktStatusField(r.Stdout, "CapEff"); r.Code != 0 || rktStatusField(r.Stdout, "NoNewPrivs") != "0" || eff == "" || rktCapBit(eff, 21) {
			t.Errorf("%s: a root app: want NoNewPrivs 0 and no CAP_SYS_ADMIN: %s", fl, r)
		}
	}
}

// rktCapBit reports whether a hexadecimal capability set holds capability n.
func rktCapBit(hex string, n uint) bool {
	var v uint64
	for _, c := range hex {
		v <<= 4
		switch {
		case c >= '0' && c <= '9':
			v |= uint64(c - '0')
		case c >= 'a' && c <= 'f':
			v |= uint64(c-'a') + 10
		}
	}
	return v&(1<<n) != 0
}

// rktImageFromRootfs writes an ACI of a busybox rootfs that edit may change.
func rktImageFromRootfs(t *testing.T, name string, rootfs func(dir string), manifest func(m map[string]any), exec ...string) string {
	t.Helper()
	dir := busyboxRootfs(t)
	if rootfs != nil {
		rootfs(dir)
	}
	m := imageManifest(name, exec...)
	if manifest != nil {
		manifest(m)
	}
	return writeACI(t, filepath.Join(t.TempDir(), "image.aci"), dir, m)
}

// --user=root --group=root, and 0, work in an image without /etc/passwd
// and /etc/group.
func TestRktRootUserWithoutPasswdFiles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := rktImageFromRootfs(t, "example.com/nopasswd", func(dir string) {
		os.Remove(filepath.Join(dir, "etc/passwd"))
		os.Remove(filepath.Join(dir, "etc/group"))
	}, func(m map[string]any) {
		rktApp(m)["user"], rktApp(m)["group"] = "root", "root"
	}, "/bin/sh", "-c", "echo ids=$(id -u):$(id -g)")
	for _, fl := range rktFlavours(t) {
		for _, ug := range [][2]string{{"root", "root"}, {"0", "0"}, {"root", "0"}} {
			r := e.run("run", "--insecure-options=image", fl, aci, "--user="+ug[0], "--group="+ug[1])
			if r.Code != 0 || !strings.Contains(r.Stdout, "ids=0:0") {
				t.Errorf("%s --user=%s --group=%s: %s", fl, ug[0], ug[1], r)
			}
		}
		// The image's own user and group "root".
		if r := e.run("run", "--insecure-options=image", fl, aci); r.Code != 0 || !strings.Contains(r.Stdout, "ids=0:0") {
			t.Errorf("%s: image user root: %s", fl, r)
		}
	}
}

// A host volume whose source is a file is mounted at a path the image
// lacks (the target file is created), at /etc/hosts, and through a
// symbolic link of the image, which is resolved inside the app's root.
func TestRktFileVolumeAtMissingTarget(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "file")
	writeFile(t, src, "from-the-host\n")
	hostDir := filepath.Join(t.TempDir(), "hostonly")
	aci := rktImageFromRootfs(t, "example.com/filevol", func(dir string) {
		os.MkdirAll(filepath.Join(dir, "srv"), 0o755)
		os.Symlink("/srv", filepath.Join(dir, "vlink"))
		// An absolute link naming a host directory: resolved in the app.
		os.MkdirAll(filepath.Join(dir, hostDir), 0o755)
		os.Symlink(hostDir, filepath.Join(dir, "hlink"))
	}, nil, "/bin/sh", "-c", "cat /newfile /etc/hosts /srv/viafile /hlink/x && test -f /newfile && echo file-ok")
	for _, fl := range rktFlavours(t) {
		r := e.run("run", "--insecure-options=image", fl, "--volume=v,kind=host,source="+src, aci,
			"--mount=volume=v,target=/newfile", "--mount=volume=v,target=/etc/hosts",
			"--mount=volume=v,target=/vlink/viafile", "--mount=volume=v,target=/hlink/x")
		if r.Code != 0 || strings.Count(r.Stdout, "from-the-host") != 4 || !strings.Contains(r.Stdout, "file-ok") {
			t.Errorf("%s: file volume at missing targets: %s", fl, r)
		}
		if _, err := os.Stat(filepath.Join(hostDir, "x")); err == nil {
			t.Errorf("%s: a mount target was created on the host through the image's link", fl)
		}
	}
}

// Nested mount targets are mounted shallowest first, so each is visible:
// the image's /dir1 mount point does not hide a mount at /dir1/dir2/dir3.
func TestRktNestedMountTargetsAllVisible(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	outer, inner := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(outer, "outer"), "outer\n")
	writeFile(t, filepath.Join(inner, "inner"), "inner\n")
	aci := rktImage(t, "example.com/nested", func(m map[string]any) {
		rktApp(m)["mountPoints"] = []map[string]any{{"name": "dir1", "path": "/dir1"}}
	}, "/bin/sh", "-c", "cat /dir1/outer /dir1/dir2/dir3/inner")
	for _, fl := range rktFlavours(t) {
		r := e.run("run", "--insecure-options=image", fl,
			"--volume=dir1,kind=host,source="+outer, "--volume=deep,kind=host,source="+inner, aci,
			"--mount=volume=deep,target=/dir1/dir2/dir3")
		if r.Code != 0 || !strings.Contains(r.Stdout, "outer\ninner\n") {
			t.Errorf("%s: nested mounts: %s", fl, r)
		}
	}
}

// A volume's readOnly=false wins over the image mount point's readOnly:
// true; a volume that does not set it follows the mount point.
func TestRktVolumeReadOnlySettingWins(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := t.TempDir()
	aci := rktImage(t, "example.com/rovol", func(m map[string]any) {
		rktApp(m)["mountPoints"] = []map[string]any{{"name": "data", "path": "/data", "readOnly": true}}
	}, "/bin/sh", "-c", "touch /data/x && echo wrote")
	for _, fl := range rktFlavours(t) {
		r := e.run("run", "--insecure-options=image", fl, "--volume=data,kind=host,source="+dir+",readOnly=false", aci)
		if r.Code != 0 || !strings.Contains(r.Stdout, "wrote") {
			t.Errorf("%s: readOnly=false volume on a readOnly mount point: %s", fl, r)
		}
		r = e.run("run", "--insecure-options=image", fl, "--volume=data,kind=host,source="+dir, aci)
		if r.Code == 0 || strings.Contains(r.Stdout, "wrote") || !strings.Contains(r.Stderr+r.Stdout, "Read-only") {
			t.Errorf("%s: a volume without readOnly on a readOnly mount point was writable: %s", fl, r)
		}
	}
}

// /etc/mtab exists in the app (a link to /proc/self/mounts), and
// --hostname also writes /etc/hostname in the app.
func TestRktEtcMtabAndHostnameFile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := rktImage(t, "example.com/etcfiles", nil, "/bin/sh", "-c",
		"echo link=$(readlink /etc/mtab); grep -c ' /proc ' /etc/mtab; echo name=$(cat /etc/hostname 2>/dev/null)")
	for _, fl := range rktFlavours(t) {
		r := e.run("run", "--insecure-options=image", fl, aci)
		if r.Code != 0 || !strings.Contains(r.Stdout, "link=../proc/self/mounts\n") || strings.Contains(r.Stdout, "\n0\n") {
			t.Errorf("%s: /etc/mtab: %s", fl, r)
		}
	}
	r := e.run("run", "--insecure-options=image", rktNspawn, "--hostname=rkt-compat-host", aci)
	if r.Code != 0 || !strings.Contains(r.Stdout, "name=rkt-compat-host\n") {
		t.Errorf("--hostname did not write /etc/hostname: %s", r)
	}
}

// Command-line isolators replace the image's of the same kind, as rkt
// documents: --caps-remove replaces an image's capabilities retain-set,
// --seccomp=mode=retain an image's seccomp remove-set.
func TestRktCommandLineIsolatorsReplaceImages(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	aci := rktImage(t, "example.com/isos", func(m map[string]any) {
		rktApp(m)["isolators"] = []map[string]any{
			{"name": "os/linux/capabilities-retain-set", "value": map[string]any{"set": []string{"CAP_NET_ADMIN", "CAP_CHOWN"}}},
			{"name": "os/linux/seccomp-remove-set", "value": map[string]any{"set": []string{"mkdir", "mkdirat"}, "errno": "EPERM"}},
		}
	}, "/bin/sh", "-c", "grep CapEff /proc/self/status; mkdir /tmp/made && echo mkdir-ok")
	r := e.run("run", "--insecure-options=image", rktNspawn, aci)
	if eff := rktStatusField(r.Stdout, "CapEff"); eff != "0000000000001001" || strings.Contains(r.Stdout, "mkdir-ok") {
		t.Errorf("the image's isolators: want CAP_CHOWN and CAP_NET_ADMIN only and mkdir denied: %s", r)
	}
	r = e.run("run", "--insecure-options=image", rktNspawn, aci, "--caps-remove=CAP_KILL")
	if eff := rktStatusField(r.Stdout, "CapEff"); eff == "" || rktCapBit(eff, 5) || rktCapBit(eff, 12) || !rktCapBit(eff, 0) || !rktCapBit(eff, 7) {
		t.Errorf("--caps-remove=CAP_KILL: want the default set without CAP_KILL (not the image's retain-set): %s", r)
	}
	r = e.run("run", "--insecure-options=image", rktNspawn, aci, "--seccomp=mode=retain,@rkt/default-whitelist")
	if r.Code != 0 || !strings.Contains(r.Stdout, "mkdir-ok") || rktStatusField(r.Stdout, "CapEff") != "0000000000001001" {
		t.Errorf("--seccomp=mode=retain: want it to replace the image's remove-set (and keep its capabilities): %s", r)
	}
}

// A negative --oom-score-adj is applied (stage1 holds CAP_SYS_RESOURCE), or
// else warned about; it never kills the app with "permission denied". A
// capability stage1 itself does not hold is dropped with a warning.
func TestRktOOMScoreAdjAndMissingCapabilityDoNotKillTheApp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := rktImage(t, "example.com/oom", nil, "/bin/sh", "-c", "echo adj=$(cat /proc/self/oom_score_adj)")
	// Isolators are applied by the nspawn flavour (fly records them only).
	requireNspawn(t)
	// Lowering needs CAP_SYS_RESOURCE on the host: set where stage1 holds
	// it, warned about where it does not, and the app runs either way.
	hostCanLower := os.WriteFile("/proc/self/oom_score_adj", []byte("0"), 0) == nil && rktHoldsCap(24)
	r := e.run("run", "--insecure-options=image", rktNspawn, aci, "--oom-score-adj=-500")
	if r.Code != 0 || (hostCanLower && !strings.Contains(r.Stdout, "adj=-500")) ||
		(!hostCanLower && !strings.Contains(r.Stderr, "oom_score_adj -500 not set")) {
		t.Errorf("--oom-score-adj=-500 (CAP_SYS_RESOURCE on the host: %v): %s", hostCanLower, r)
	}
	r = e.run("run", "--insecure-options=image", rktNspawn, aci, "--oom-score-adj=500")
	if r.Code != 0 || !strings.Contains(r.Stdout, "adj=500") {
		t.Errorf("--oom-score-adj=500: %s", r)
	}
	// nspawn's containers lack CAP_SYS_RESOURCE.
	r = e.run("run", "--insecure-options=image", rktNspawn, aci, "--caps-retain=CAP_KILL,CAP_SYS_RESOURCE")
	if r.Code != 0 || !strings.Contains(r.Stdout, "adj=0") || !strings.Contains(r.Stderr, "CAP_SYS_RESOURCE") {
		t.Errorf("retaining a capability stage1 lacks: want a warning and the app run: %s", r)
	}
}

// rktHoldsCap reports whether the test process holds capability n.
func rktHoldsCap(n uint) bool {
	data, err := os.ReadFile("/proc/self/status")
	return err == nil && rktCapBit(rktStatusField(string(data), "CapEff"), n)
}

// Event handlers (pre-start, post-stop) run as root in the app's root, not
// as the app's user.
func TestRktEventHandlersRunAsRoot(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	aci := rktImage(t, "example.com/handlers", func(m map[string]any) {
		rktApp(m)["user"], rktApp(m)["group"] = "1000", "1000"
		rktApp(m)["mountPoints"] = []map[string]any{{"name": "out", "path": "/out"}}
		rktApp(m)["eventHandlers"] = []map[string]any{
			{"name": "pre-start", "exec": []string{"/bin/sh", "-c", "echo pre=$(id -u):$(id -g) > /out/pre; test -f /bin/busybox && echo in-app-root >> /out/pre"}},
			{"name": "post-stop", "exec": []string{"/bin/sh", "-c", "echo post=$(id -u):$(id -g) > /out/post"}},
		}
	}, "/bin/sh", "-c", "echo app=$(id -u)")
	r := e.run("run", "--insecure-options=image", rktNspawn, "--volume=out,kind=host,source="+dir, aci)
	if r.Code != 0 || !strings.Contains(r.Stdout, "app=1000") {
		t.Fatalf("run: %s", r)
	}
	pre, _ := os.ReadFile(filepath.Join(dir, "pre"))
	post, _ := os.ReadFile(filepath.Join(dir, "post"))
	if string(pre) != "pre=0:0\nin-app-root\n" || string(post) != "post=0:0\n" {
		t.Errorf("handlers: pre %q, post %q: %s", pre, post, r)
	}
}

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

// An image without an os label is refused as an app, as rkt does, before
// a pod is made.
func TestRktImageWithoutOSLabelRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := rktImage(t, "example.com/noos", func(m map[string]any) {
		m["labels"] = []map[string]string{{"name": "arch", "value": appcArch()}}
	})
	r := e.run("run", "--insecure-options=image", aci)
	if r.Code == 0 || !strings.Contains(r.Stderr, "missing os label in the image manifest") {
		t.Errorf("an image without an os label: %s", r)
	}
	if out := e.mustRun("list", "--no-legend").Stdout; strings.TrimSpace(out) != "" {
		t.Errorf("a pod was made: %q", out)
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

// rktExportImage is an image whose app changes its root filesystem: it
// rewrites one file, removes another and makes a directory, and writes to
// a volume, which is not part of an export.
func rktExportImage(t *testing.T, name string) string {
	t.Helper()
	return rktImageFromRootfs(t, name, func(dir string) {
		writeFile(t, filepath.Join(dir, "etc/keep"), "as built\n")
		writeFile(t, filepath.Join(dir, "etc/gone"), "to be removed\n")
		os.MkdirAll(filepath.Join(dir, "data"), 0o755)
	}, func(m map[string]any) {
		rktApp(m)["mountPoints"] = []map[string]any{{"name": "data", "path": "/data"}}
	}, "/bin/sh", "-c", "echo changed > /etc/keep; rm /etc/gone; mkdir /made; echo new > /made/file; echo vol > /data/x")
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

// rktCutServer serves one image over HTTP on 127.0.0.1, cutting the
// connection after cutAfter bytes the first cuts times it is asked for
// the whole image, and logging each request's Range and If-Range.
type rktCutServer struct {
	mu       sync.Mutex
	body     []byte
	etag     string
	cutAfter int
	cuts     int
	// badRange answers a range request with a Content-Range that starts
	// at 0, whatever was asked.
	badRange bool
	log      []string
	url      string
}

func rktNewCutServer(t *testing.T, body []byte, etag string, cutAfter int) *rktCutServer {
	s := &rktCutServer{body: body, etag: etag, cutAfter: cutAfter, cuts: 1}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(srv.Close)
	s.url = srv.URL + "/image.aci"
	return s
}

func (s *rktCutServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.log = append(s.log, "range="+r.Header.Get("Range")+" if-range="+r.Header.Get("If-Range"))
	body, etag, cut, bad := s.body, s.etag, s.cuts > 0 && r.Header.Get("Range") == "", s.badRange
	if cut {
		s.cuts--
	}
	s.mu.Unlock()
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	switch {
	case cut:
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		w.Write(body[:s.cutAfter])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	case bad && r.Header.Get("Range") != "":
		w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", len(body)-1, len(body)))
		w.WriteHeader(http.StatusPartialContent)
		w.Write(body)
	default:
		http.ServeContent(w, r, "image.aci", time.Time{}, bytes.NewReader(body))
	}
}

func (s *rktCutServer) set(body []byte, etag string, badRange bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body, s.etag, s.badRange = body, etag, badRange
}

func (s *rktCutServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

// rktImageID is the ID orbit gives an ACI file, fetched into an env of
// its own.
func rktImageID(t *testing.T, path string) string {
	t.Helper()
	return strings.TrimSpace(newEnv(t).mustRun("fetch", "--insecure-options=image", path).Stdout)
}

// rktPartials lists the kept downloads of an env's store.
func rktPartials(e *env) []string {
	ents, _ := os.ReadDir(filepath.Join(e.Dir, "cas", "partial"))
	var names []string
	for _, d := range ents {
		names = append(names, d.Name())
	}
	return names
}

// An HTTP fetch cut short is resumed by the next fetch of the URL with a
// Range request for the rest (If-Range with the server's ETag), as rkt
// resumed its partial downloads, and gives the right image; the kept part
// is gone once the image is stored.
func TestRktFetchResumesCutDownload(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/resumed")
	body, err := os.ReadFile(aci)
	if err != nil {
		t.Fatal(err)
	}
	want := rktImageID(t, aci)
	n := len(body) / 2
	srv := rktNewCutServer(t, body, `"v1"`, n)
	if r := e.run("fetch", "--insecure-options=image", srv.url); r.Code == 0 {
		t.Fatalf("the cut fetch succeeded: %s", r)
	}
	if len(rktPartials(e)) == 0 {
		t.Errorf("nothing of the cut download was kept")
	}
	r := e.run("fetch", "--insecure-options=image", srv.url)
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != want {
		t.Fatalf("the resumed fetch: want %s: %s", want, r)
	}
	reqs := srv.requests()
	if len(reqs) != 2 || reqs[1] != fmt.Sprintf(`range=bytes=%d- if-range="v1"`, n) {
		t.Errorf("requests: want the second to ask for bytes=%d- if the image is still \"v1\": %q", n, reqs)
	}
	if p := rktPartials(e); len(p) != 0 {
		t.Errorf("kept download left after the image was stored: %v", p)
	}
}

// A kept part that is not part of the image now is discarded and the
// image downloaded whole: the server's validator changed (it answers the
// If-Range with the whole new image), the server gave no validator and
// the result is not a valid image, or it answers with another range than
// asked. image gc removes kept parts nobody uses.
func TestRktFetchDiscardsInvalidPartial(t *testing.T) {
	t.Parallel()
	oldACI := busyboxACI(t, "example.com/partial-old")
	newACI := busyboxACI(t, "example.com/partial-new", "/bin/true")
	oldBody, _ := os.ReadFile(oldACI)
	newBody, _ := os.ReadFile(newACI)
	want := rktImageID(t, newACI)
	n := min(len(oldBody), len(newBody)) / 2
	for _, tc := range []struct {
		name     string
		etag     string
		badRange bool
		requests int
	}{
		{"changed ETag", `"old"`, false, 2},
		{"no validator", "", false, 3},
		{"wrong Content-Range", `"old"`, true, 3},
	} {
		e := newEnv(t)
		srv := rktNewCutServer(t, oldBody, tc.etag, n)
		if r := e.run("fetch", "--insecure-options=image", srv.url); r.Code == 0 {
			t.Fatalf("%s: the cut fetch succeeded: %s", tc.name, r)
		}
		if tc.etag != "" && !tc.badRange {
			srv.set(newBody, `"new"`, false)
		} else {
			srv.set(newBody, tc.etag, tc.badRange)
		}
		r := e.run("fetch", "--insecure-options=image", srv.url)
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != want {
			t.Errorf("%s: want the new image %s: %s", tc.name, want, r)
		}
		reqs := srv.requests()
		if len(reqs) != tc.requests || !strings.HasPrefix(reqs[1], fmt.Sprintf("range=bytes=%d-", n)) || (len(reqs) > 2 && !strings.HasPrefix(reqs[2], "range= ")) {
			t.Errorf("%s: requests: want a range request, then (%d in all) the whole image: %q", tc.name, tc.requests, reqs)
		}
		if p := rktPartials(e); len(p) != 0 {
			t.Errorf("%s: kept download left: %v", tc.name, p)
		}
	}

	// image gc removes a kept part nobody has touched for a while; gc
	// one too old to be resumed.
	e := newEnv(t)
	srv := rktNewCutServer(t, oldBody, `"gc"`, n)
	age := func(d time.Duration) {
		parts := rktPartials(e)
		if len(parts) == 0 {
			t.Fatal("nothing of the cut download was kept")
		}
		old := time.Now().Add(-d)
		for _, p := range parts {
			os.Chtimes(filepath.Join(e.Dir, "cas", "partial", p), old, old)
		}
	}
	e.run("fetch", "--insecure-options=image", srv.url)
	age(time.Hour)
	if r := e.mustRun("gc"); strings.Contains(r.Stdout, "partial") || len(rktPartials(e)) == 0 {
		t.Errorf("gc removed a kept download young enough to resume: %s", r)
	}
	e.mustRun("image", "gc")
	if p := rktPartials(e); len(p) != 0 {
		t.Errorf("image gc left kept downloads: %v", p)
	}
	srv.set(oldBody, `"gc"`, false)
	srv.mu.Lock()
	srv.cuts = 1
	srv.mu.Unlock()
	e.run("fetch", "--insecure-options=image", srv.url)
	age(25 * time.Hour)
	if r := e.mustRun("gc"); !strings.Contains(r.Stdout, `removed leftover "partial/`) || len(rktPartials(e)) != 0 {
		t.Errorf("gc left a kept download too old to resume: %s %v", r, rktPartials(e))
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

// An implicit empty volume of a converted Docker image (annotation
// appc.io/docker/repository) starts with the image's files at its path,
// with the directory's owner and mode, as in Docker and rkt: links are
// copied as links, and a mount point whose path is a link naming a host
// directory is resolved inside the app's root, so the image's files are
// copied, not the host's. An appc image's volume stays empty.
func TestRktDockerImageVolumeFilledFromImage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hostDir := filepath.Join(t.TempDir(), "host-secret")
	writeFile(t, filepath.Join(hostDir, "secret"), "host file\n")
	rootfs := func(dir string) {
		writeFile(t, filepath.Join(dir, "data/seed"), "seeded\n")
		writeFile(t, filepath.Join(dir, "data/sub/nested"), "nested\n")
		os.Symlink("/etc/passwd", filepath.Join(dir, "data/link"))
		os.Chown(filepath.Join(dir, "data"), 1000, 1000)
		os.Chmod(filepath.Join(dir, "data"), 0o750)
		// The link's target exists in the image too, with a file of its own.
		writeFile(t, filepath.Join(dir, hostDir, "in-image"), "image file\n")
		os.Symlink(hostDir, filepath.Join(dir, "escape"))
	}
	mps := []map[string]any{{"name": "data", "path": "/data"}, {"name": "escape", "path": "/escape"}}
	show := "cat /data/seed /data/sub/nested; echo link=$(readlink /data/link); echo dir=$(stat -c %u:%g:%a /data); " +
		"echo escape=$(ls /escape); echo more > /data/more && echo writable"
	docker := rktImageFromRootfs(t, "example.com/docker-vol", rootfs, func(m map[string]any) {
		rktApp(m)["mountPoints"] = mps
		m["annotations"] = []map[string]string{{"name": "appc.io/docker/repository", "value": "library/dockervol"}}
	}, "/bin/sh", "-c", show)
	plain := rktImageFromRootfs(t, "example.com/appc-vol", rootfs, func(m map[string]any) {
		rktApp(m)["mountPoints"] = mps
	}, "/bin/sh", "-c", "echo entries=$(ls -A /data | wc -l)")
	for _, fl := range rktFlavours(t) {
		r := e.run("run", "--insecure-options=image", fl, docker)
		want := "seeded\nnested\nlink=/etc/passwd\ndir=1000:1000:750\nescape=in-image\nwritable\n"
		if r.Code != 0 || r.Stdout != want {
			t.Errorf("%s: a Docker image's implicit volume: want %q: %s", fl, want, r)
		}
		if r := e.run("run", "--insecure-options=image", fl, plain); r.Code != 0 || r.Stdout != "entries=0\n" {
			t.Errorf("%s: an appc image's implicit volume is not empty: %s", fl, r)
		}
	}
	if got, _ := os.ReadDir(hostDir); len(got) != 1 {
		t.Errorf("the host directory the image's link names was changed: %v", got)
	}
}

// An OCI image whose config declares a VOLUME over a directory with files
// runs with those files in the volume.
func TestRktOCIVolumeFilledFromImage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img, err := mutate.AppendLayers(empty.Image, ociDirLayer(t, busyboxRootfs(t)), ociLayer(t,
		ociTarEntry{name: "var/lib/app/"},
		ociTarEntry{name: "var/lib/app/state", body: "initial state\n"},
		ociTarEntry{name: "var/lib/app/conf.d/"},
		ociTarEntry{name: "var/lib/app/conf.d/a.conf", body: "a=1\n"},
	))
	if err != nil {
		t.Fatal(err)
	}
	img = mutate.MediaType(img, ocitypes.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, ocitypes.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", "amd64"
	cfg.Config.Cmd = []string{"/bin/sh", "-c", "cat /var/lib/app/state /var/lib/app/conf.d/a.conf; grep -c ' /var/lib/app ' /proc/self/mounts"}
	cfg.Config.Volumes = map[string]struct{}{"/var/lib/app": {}}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	ref := "oci:" + ociWriteLayout(t, img, "v1") + ":v1"
	for _, fl := range rktFlavours(t) {
		r := e.run("run", "--insecure-options=image", fl, ref)
		if r.Code != 0 || r.Stdout != "initial state\na=1\n1\n" {
			t.Errorf("%s: an OCI VOLUME over files: %s", fl, r)
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

// An image used only as a dependency may leave out the os label, as the
// appc spec allows and rkt accepted: only the app's own image needs one.
func TestRktDependencyWithoutOSLabelAccepted(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dep := rktImage(t, "example.com/base-noos", func(m map[string]any) {
		m["labels"] = []map[string]string{{"name": "arch", "value": appcArch()}}
		delete(m, "app")
	})
	app := filepath.Join(t.TempDir(), "app")
	writeFile(t, filepath.Join(app, "app-file"), "from the app's own image\n")
	m := imageManifest("example.com/on-noos-base", "/bin/sh", "-c", "cat /app-file")
	m["dependencies"] = []map[string]any{{"imageName": "example.com/base-noos"}}
	aci := writeACI(t, filepath.Join(t.TempDir(), "app.aci"), app, m)
	e.mustRun("fetch", "--insecure-options=image", dep)
	for _, fl := range rktFlavours(t) {
		if r := e.run("run", "--insecure-options=image", fl, aci); r.Code != 0 || r.Stdout != "from the app's own image\n" {
			t.Errorf("%s: an app on a dependency without an os label: %s", fl, r)
		}
	}
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
