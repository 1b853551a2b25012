package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Functional tests of isolators and identities orbit handles as rkt 1.30
// does; helpers are in rkt_compat_test.go.

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
