package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// devicesMarker fills the file behind the test's loop device: seeing it in
// a pod's output means the pod read the device.
const devicesMarker = "ORBIT-LOOP-DEVICE-MARKER"

// devicesLoop attaches a loop device over a file of the test's own, filled
// with devicesMarker, and returns its path, major and minor; it is detached
// when the test ends. No real device of the machine is ever used.
func devicesLoop(t *testing.T) (string, uint32, uint32) {
	t.Helper()
	requireTool(t, "losetup", "util-linux")
	file := filepath.Join(t.TempDir(), "backing")
	if err := os.WriteFile(file, []byte(strings.Repeat(devicesMarker, 4096/len(devicesMarker)+1)[:4096]), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("losetup", "-f", "--show", file).CombinedOutput()
	require(t, err == nil, "a free loop device (attaching one: %v: %s)", err, out)
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("detaching %s: %v: %s", dev, err, out)
		}
	})
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		t.Fatal(err)
	}
	return dev, unix.Major(st.Rdev), unix.Minor(st.Rdev)
}

// A default pod may create a node for a host block device, but neither
// make nor open it: the device policy of the pod's cgroup refuses both.
func TestHostileDevicesMknodHostBlockDevice(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	_, major, minor := devicesLoop(t)
	e := newEnv(t)
	script := "mknod /tmp/d b " + strconv.Itoa(int(major)) + " " + strconv.Itoa(int(minor)) + "; echo mknod=$?; head -c 24 /tmp/d; echo read=$?; " +
		"mknod /dev/d b " + strconv.Itoa(int(major)) + " " + strconv.Itoa(int(minor)) + "; head -c 24 /dev/d; echo devread=$?"
	aci := busyboxACI(t, "example.com/mknod", "/bin/sh", "-c", script)
	r, _ := e.nsRun(aci)
	if strings.Contains(r.Stdout, devicesMarker) {
		t.Fatalf("the pod read the host's loop device:\n%s", r)
	}
	if !strings.Contains(r.Stdout, "read=1") || !strings.Contains(r.Stdout, "devread=1") {
		t.Fatalf("reading the device node should fail:\n%s", r)
	}
}

// A world-readable block device node shipped in an image is not honoured,
// for a root app with every default capability nor for a non-root app.
func TestHostileDevicesImageBlockDevice(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	_, major, minor := devicesLoop(t)
	e := newEnv(t)
	root := busyboxRootfs(t)
	if err := unix.Mknod(filepath.Join(root, "blk"), unix.S_IFBLK|0o666, int(unix.Mkdev(major, minor))); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "blk"), 0o666); err != nil {
		t.Fatal(err)
	}
	m := imageManifest("example.com/shipped-device", "/bin/sh", "-c", "ls -l /blk; head -c 24 /blk; echo read=$?; grep ' / / ' /proc/self/mountinfo")
	aci := writeACI(t, filepath.Join(t.TempDir(), "dev.aci"), root, m)
	for _, args := range [][]string{
		{aci},
		{aci, "--user=1000", "--group=1000"},
		{aci, "--caps-retain=CAP_DAC_OVERRIDE,CAP_SYS_ADMIN"},
	} {
		r, _ := e.nsRun(args...)
		if strings.Contains(r.Stdout, devicesMarker) {
			t.Fatalf("run %v read the device node the image shipped:\n%s", args[1:], r)
		}
		if !strings.Contains(r.Stdout, "read=1") || !strings.Contains(r.Stdout, "/blk") {
			t.Fatalf("run %v: reading the shipped node should fail:\n%s", args[1:], r)
		}
		// The device policy alone refuses the open; the image's rootfs is
		// also mounted nodev, so its nodes would not open even without it.
		if root := devicesRootMount(r.Stdout); !strings.Contains(root, "nodev") {
			t.Fatalf("run %v: the app's root is not mounted nodev: %q", args[1:], root)
		}
	}
}

// devicesRootMount finds the mountinfo line of the root mount in output.
func devicesRootMount(out string) string {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 5 && f[3] == "/" && f[4] == "/" {
			return line
		}
	}
	return ""
}

// The devices on the allow-list still work in a pod.
func TestHostileDevicesAllowListWorks(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	script := `echo x > /dev/null && echo null=ok
[ "$(head -c 8 /dev/zero | wc -c)" = 8 ] && echo zero=ok
[ "$(head -c 8 /dev/urandom | wc -c)" = 8 ] && echo urandom=ok
[ "$(head -c 8 /dev/random | wc -c)" = 8 ] && echo random=ok
echo x 2>/dev/null > /dev/full || echo full=ok
(exec 3<>/dev/ptmx) && echo ptmx=ok
(: </dev/tty) 2>/tmp/tty; grep -q "not permitted" /tmp/tty || echo tty=ok
mknod /tmp/null c 1 3 && echo mknod-null=ok`
	aci := busyboxACI(t, "example.com/allowed", "/bin/sh", "-c", script)
	r, _ := e.nsRun(aci)
	if r.Code != 0 {
		t.Fatalf("run: %s", r)
	}
	for _, want := range []string{"null", "zero", "urandom", "random", "full", "ptmx", "tty", "mknod-null"} {
		if !strings.Contains(r.Stdout, want+"=ok\n") {
			t.Errorf("/dev/%s does not work in a pod:\n%s", want, r)
		}
	}
}

// An app, even one that keeps CAP_SYS_PTRACE to reach the supervisor's
// root through /proc/1/root, finds every cgroup hierarchy read-only.
func TestHostileDevicesCgroupsReadOnly(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	var script strings.Builder
	for _, base := range []string{"/sys/fs/cgroup", "/proc/1/root/sys/fs/cgroup"} {
		for _, h := range []string{"", "/memory", "/cpu", "/pids", "/devices", "/systemd", "/unified"} {
			d := base + h
			script.WriteString("if [ -d " + d + " ]; then mkdir " + d + "/orbit-escape 2>/dev/null && echo WRITABLE " + d + "; echo tried " + d + "; fi\n")
		}
	}
	aci := busyboxACI(t, "example.com/cgroups-ro", "/bin/sh", "-c", script.String())
	r, _ := e.nsRun(aci, "--caps-retain=CAP_SYS_PTRACE,CAP_DAC_OVERRIDE,CAP_SYS_ADMIN", "--memory=64M")
	if r.Code != 0 {
		t.Fatalf("run: %s", r)
	}
	if strings.Contains(r.Stdout, "WRITABLE") {
		t.Fatalf("the app could write to a cgroup hierarchy:\n%s", r)
	}
	for _, want := range []string{"tried /sys/fs/cgroup/memory", "tried /proc/1/root/sys/fs/cgroup/memory"} {
		if !strings.Contains(r.Stdout, want+"\n") {
			t.Fatalf("the app did not see %s:\n%s", strings.TrimPrefix(want, "tried "), r)
		}
	}
}

// A mount with an empty source in the host's mountinfo does not break the
// detection of cgroups: a pod with a memory limit still runs. The mount is
// made in a mount namespace of the test's own, so nothing else on the
// machine sees it.
func TestHostileDevicesEmptyMountSource(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	requireTool(t, "unshare", "util-linux")
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/empty-source", "/bin/sh", "-c", "echo limited")
	dir := t.TempDir()
	args := append([]string{binary}, e.args("run", "--insecure-options=image", "--memory=64M", aci)...)
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	script := "mount -t tmpfs '' '" + dir + "' && grep -q ' - tmpfs  ' /proc/self/mountinfo && exec " + strings.Join(quoted, " ")
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "sh", "-c", script)
	r := runCommand(t, cmd)
	if r.Code != 0 || !strings.Contains(r.Stdout, "limited") {
		t.Fatalf("a pod with --memory failed on a host with an empty mount source: %s", r)
	}
}
