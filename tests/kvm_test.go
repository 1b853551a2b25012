package tests

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orbit-containers/orbit/stage1/kvm/kernel"
)

// kvmArgs are the flags every kvm test run gets: this machine's KVM does
// not boot guests, so the tests ask for TCG rather than probe each time
// (TestKVMAccelAutoFallsBack probes).
var kvmArgs = []string{"--stage1-name=kvm", "--stage1-kvm-accel=tcg"}

// kvmRun runs images in the kvm flavour without signature checks and
// without networking unless the arguments ask for some, saving the pod's
// UUID.
func (e *env) kvmRun(args ...string) (result, string) {
	e.t.Helper()
	uuidFile := filepath.Join(e.t.TempDir(), "uuid")
	pre := append([]string{"run"}, kvmArgs...)
	pre = append(pre, "--insecure-options=image", "--uuid-file-save="+uuidFile)
	if !givesNet(args) && e.NetNS == "" {
		pre = append(pre, "--net=none")
	}
	r := e.run(append(pre, args...)...)
	data, _ := os.ReadFile(uuidFile)
	return r, strings.TrimSpace(string(data))
}

// requireKVM is the prerequisite of every test that runs the kvm flavour:
// QEMU and a guest kernel (the small one or Debian's).
func requireKVM(t testing.TB) {
	t.Helper()
	requireTool(t, "qemu-system-x86_64", "qemu-system-x86")
	kernels, _ := filepath.Glob("/boot/vmlinuz-*")
	small, _ := filepath.Glob("/var/cache/orbit/kvm-kernel/current/vmlinux")
	require(t, len(kernels)+len(small) > 0, "no guest kernel: install linux-image-amd64 or run make kvm-kernel")
}

// kvmFlavour is one flavour the shared pod tests run under.
type kvmFlavour struct {
	name    string
	require func(testing.TB)
	// run runs a pod without signature checks, returning its UUID.
	run func(e *env, args ...string) (result, string)
	// start starts a pod whose app prints "ready", and waits for it.
	start func(t *testing.T, e *env, aci string) (*exec.Cmd, *lifecycleBuffer, string)
}

// kvmPodFlavours are the flavours that run pods alike (one supervisor as
// PID 1, in a container or a VM): the tests that take this table check
// that each behaves as the other.
func kvmPodFlavours() []kvmFlavour {
	return []kvmFlavour{
		{name: "nspawn", require: requireNspawn, run: (*env).nsRun, start: lifecycleStart},
		{name: "kvm", require: requireKVM, run: (*env).kvmRun, start: kvmStart},
	}
}

// kvmStart is lifecycleStart for the kvm flavour.
func kvmStart(t *testing.T, e *env, aci string) (*exec.Cmd, *lifecycleBuffer, string) {
	t.Helper()
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	args := append([]string{"run"}, kvmArgs...)
	args = append(args, "--net=none", "--insecure-options=image", "--uuid-file-save="+uuidFile, aci)
	cmd := e.command(args...)
	f, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	out := &lifecycleBuffer{f: f}
	cmd.Stdout = f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	// A VM under TCG on a busy machine takes a while to boot.
	deadline := time.Now().Add(kvmBootTimeout)
	for !strings.Contains(out.String(), "ready") {
		if time.Now().After(deadline) {
			t.Fatalf("the pod's app never said it was ready: %q", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	data, err := os.ReadFile(uuidFile)
	if err != nil {
		t.Fatal(err)
	}
	return cmd, out, strings.TrimSpace(string(data))
}

// kvmBootTimeout bounds the wait for a VM's app to start.
const kvmBootTimeout = 120 * time.Second

func TestKVMRunExitStatus(t *testing.T) {
	t.Parallel()
	requireKVM(t)
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/kvm-hello", "/bin/sh", "-c", "echo hello from $(cat /proc/1/cmdline | tr '\\0' ' '); echo host=$(hostname); echo to-stderr >&2; exit 3")
	r, uuid := e.kvmRun(aci)
	if r.Code != 3 {
		t.Fatalf("want the app's exit status 3: %s", r)
	}
	if !strings.Contains(r.Stdout, "hello from /init") || strings.Contains(r.Stdout, "to-stderr") {
		t.Errorf("the app's stdout is not passed through alone, or PID 1 is not the supervisor as the VM's init:\n%s", r)
	}
	if !strings.Contains(r.Stderr, "to-stderr\n") {
		t.Errorf("the app's stderr is not passed through:\n%s", r)
	}
	if !strings.Contains(r.Stdout, "host=orbit-"+uuid+"\n") {
		t.Errorf("the VM's host name is not orbit-<uuid>:\n%s", r)
	}
	st := e.mustRun("status", uuid).Stdout
	if !strings.Contains(st, "app-kvm-hello=3") || !strings.Contains(st, "state=exited") {
		t.Errorf("status does not record the app's exit status:\n%s", st)
	}
	// Nothing of the VM is left.
	if out, _ := exec.Command("pgrep", "-f", uuid).Output(); len(out) > 0 {
		t.Errorf("processes of the pod outlived it: %s", out)
	}
}

func TestKVMRefusesHostNetworkAndBadFlags(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/kvm-refused", "/bin/true")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--stage1-name=kvm", "--net=host"}, "--net=host: a kvm pod"},
		{[]string{"--stage1-name=coreos.com/rkt/stage1-kvm", "--net=host"}, "--net=host: a kvm pod"},
		{[]string{"--stage1-name=kvm", "--stage1-kvm-accel=fast", "--net=none"}, "--stage1-kvm-accel=fast"},
		{[]string{"--stage1-name=kvm", "--stage1-kvm-kernel=/nonexistent/vmlinuz", "--net=none"}, "--stage1-kvm-kernel"},
	} {
		r := e.run(append(append([]string{"run", "--insecure-options=image"}, tc.args...), aci)...)
		if r.Code != 254 || !strings.Contains(r.Stderr, tc.want) || strings.Count(strings.TrimSpace(r.Stderr), "\n") > 1 {
			t.Errorf("%v: want one line about %q: %s", tc.args, tc.want, r)
		}
	}
	if out := e.mustRun("list", "--no-legend").Stdout; strings.TrimSpace(out) != "" {
		t.Errorf("a refused run made a pod:\n%s", out)
	}
}

func TestKVMPrepareRunPreparedInteractive(t *testing.T) {
	t.Parallel()
	requireKVM(t)
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/kvm-prepared", "/bin/sh", "-c", "read line; echo prepared-ran $line; exit 5")
	uuid := strings.TrimSpace(e.mustRun("prepare", "--quiet", "--stage1-name=coreos.com/rkt/stage1-kvm", "--insecure-options=image", aci).Stdout)
	// --interactive: the app reads orbit's stdin.
	r := e.runIn(strings.NewReader("typed-in\n"), "run-prepared", "--interactive", "--stage1-kvm-accel=tcg", "--net=none", uuid)
	if r.Code != 5 || !strings.Contains(r.Stdout, "prepared-ran typed-in") {
		t.Fatalf("run-prepared --interactive: %s", r)
	}
	if r := e.run("run-prepared", "--net=host", uuid); r.Code == 0 {
		t.Errorf("an exited pod ran again: %s", r)
	}
}

func TestKVMStopForceAndSIGTERM(t *testing.T) {
	t.Parallel()
	requireKVM(t)
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/kvm-daemon", "/bin/sh", "-c", "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.1; done")
	for _, how := range []string{"sigterm", "stop", "force"} {
		cmd, out, uuid := kvmStart(t, e, aci)
		switch how {
		case "sigterm":
			cmd.Process.Signal(syscall.SIGTERM)
		case "stop":
			e.mustRun("stop", uuid)
		case "force":
			e.mustRun("stop", "--force", uuid)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			cmd.Process.Kill()
			t.Fatalf("%s: the pod did not stop", how)
		}
		want, code := "app-kvm-daemon=0", 0
		if how == "force" {
			want, code = "app-kvm-daemon=137", 137
		} else if !strings.Contains(out.String(), "got-term") {
			t.Errorf("%s: SIGTERM did not reach the app: %q", how, out.String())
		}
		if got := cmd.ProcessState.ExitCode(); got != code {
			t.Errorf("%s: orbit run exited %d, want %d", how, got, code)
		}
		if st := e.mustRun("status", uuid).Stdout; !strings.Contains(st, "state=exited") || !strings.Contains(st, want) {
			t.Errorf("%s: want %s: %s", how, want, st)
		}
		if out, _ := exec.Command("pgrep", "-f", uuid).Output(); len(out) > 0 {
			t.Errorf("%s: processes of the pod outlived it: %s", how, out)
		}
	}
	e.mustRun("gc", "--grace-period=0s")
}

// TestKVMNetwork: a kvm pod on the default network is reached at its
// address and through a forwarded port, reaches the host, and shows its
// address in list, as an nspawn pod does; nothing is left behind.
func TestKVMNetwork(t *testing.T) {
	requireKVM(t)
	e, ns := networkEnv(t)
	networkOutside(t, ns) // gives the namespace networkTestAddr
	before := networkSnapshot(t, ns)
	// More than a frame's worth, so the host's segments must reach the VM.
	big := strings.Repeat("hello from the host ", 1000) + "\n"
	hostSrv := networkServe(t, ns, "0.0.0.0:0", big)
	_, hostPort, _ := net.SplitHostPort(hostSrv)
	server := networkACI(t, "example.com/kvm-server", "get 172.16.28.1 "+hostPort+" > /srv/host.txt; exec httpd -f -p 80 -h /srv")
	uuid := networkStart(t, e, append(append([]string{}, kvmArgs...), "--port=http:8080", server)...)
	ip := networkPodIP(t, e, uuid)
	if !strings.HasPrefix(ip, "172.16.28.") {
		t.Fatalf("pod address %s is not in the default subnet 172.16.28.0/24", ip)
	}
	if r := e.mustRun("list", "--no-legend"); !strings.Contains(r.Stdout, "default:ip4="+ip) {
		t.Errorf("list does not show default:ip4=%s:\n%s", ip, r.Stdout)
	}
	// The VM boots after the network is set up: wait for its server.
	deadline := time.Now().Add(kvmBootTimeout)
	for {
		body, err := networkGet(t, ns, "http://"+ip+":80/")
		if err == nil && body == "hello from the pod\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pod's server never answered at %s: %q, %v", ip, body, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	for _, c := range []struct{ url, want string }{
		{"http://" + networkTestAddr + ":8080/", "hello from the pod\n"},
		{"http://" + ip + ":80/host.txt", big},
	} {
		if body, err := networkGet(t, ns, c.url); err != nil || body != c.want {
			t.Errorf("GET %s: %q, %v; want %q", c.url, body, err, c.want)
		}
	}
	e.mustRun("stop", uuid)
	e.mustRun("status", "--wait=60s", uuid)
	e.mustRun("gc", "--grace-period=0s")
	networkNoLeaks(t, e, ns, before)
}

func TestKVMEnter(t *testing.T) {
	t.Parallel()
	requireKVM(t)
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/kvm-enter", "/bin/sh", "-c", "echo app-secret > /tmp/app-file; echo ready; while true; do sleep 0.1; done")
	cmd, _, uuid := kvmStart(t, e, aci)
	r := e.runIn(strings.NewReader("from-stdin\n"), "enter", uuid, "/bin/sh", "-c", "echo in=$(hostname) app=$AC_APP_NAME; cat /tmp/app-file; read line; echo got=$line; echo err-line >&2; exit 7")
	if r.Code != 7 {
		t.Fatalf("enter: want the command's exit status 7: %s", r)
	}
	for _, want := range []string{"in=orbit-" + uuid, "app=kvm-enter", "app-secret", "got=from-stdin"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("enter: stdout lacks %q: %s", want, r)
		}
	}
	if !strings.Contains(r.Stderr, "err-line") || strings.Contains(r.Stdout, "err-line") {
		t.Errorf("enter: stderr not kept apart: %s", r)
	}
	if r := e.run("enter", "--app=nosuch", uuid, "/bin/true"); r.Code == 0 {
		t.Errorf("enter into a missing app succeeded: %s", r)
	}
	e.mustRun("stop", uuid)
	cmd.Wait()
}

// TestKVMSettings: what a run's flags set inside an nspawn pod holds
// inside a kvm pod's VM: the app's user and environment, the host name,
// DNS and hosts entries, and --memory and --cpu both sizing the VM and
// limiting the app through the guest's cgroups.
func TestKVMSettings(t *testing.T) {
	t.Parallel()
	requireKVM(t)
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/kvm-settings", "/bin/sh", "-c", strings.Join([]string{
		"echo id=$(id -u):$(id -g) env=$GREETING host=$(hostname)",
		"grep -h nameserver /etc/resolv.conf",
		"grep -h 'db' /etc/hosts",
		"echo cpus=$(grep -c ^processor /proc/cpuinfo)",
		"echo memtotal=$(grep MemTotal /proc/meminfo | tr -s ' ' | cut -d' ' -f2)",
		"cg=$(cut -d: -f3 /proc/self/cgroup); echo memmax=$(cat /sys/fs/cgroup$cg/memory.max) cpumax=$(cat /sys/fs/cgroup$cg/cpu.max)",
	}, "; "))
	r, _ := e.kvmRun("--hostname=kvm-host", "--dns=192.0.2.53", "--hosts-entry=192.0.2.1=db",
		aci, "--user=1000", "--group=1000", "--set-env=GREETING=hello", "--memory=96M", "--cpu=1500m")
	if r.Code != 0 {
		t.Fatalf("run: %s", r)
	}
	for _, want := range []string{
		"id=1000:1000 env=hello host=kvm-host\n", "nameserver 192.0.2.53\n", "192.0.2.1\tdb", "cpus=2\n",
		"memmax=95997952 cpumax=150000 100000\n",
	} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r)
		}
	}
	// The VM has the app's memory and an overhead, not the host's.
	var kb int
	for _, line := range strings.Split(r.Stdout, "\n") {
		if v, ok := strings.CutPrefix(line, "memtotal="); ok {
			kb, _ = strconv.Atoi(v)
		}
	}
	if kb < 96<<10 || kb > 512<<10 {
		t.Errorf("the VM's memory is %d kB, want the app's 96 MiB and an overhead", kb)
	}
}

// BenchmarkStartupKVM times `orbit run` of a stored image whose app is
// /bin/true in the kvm flavour under TCG, with the small guest kernel,
// against the same with Debian's packaged kernel, and against the nspawn
// and fly flavours: the ratios are what booting a VM costs over a
// container and over a chroot.
func BenchmarkStartupKVM(b *testing.B) {
	requireKVM(b)
	requireNspawn(b)
	small := kvmkernelFind(b, kernel.Small)
	packaged := kvmkernelFind(b, kernel.Packaged)
	e, id, _ := benchTrueImage(b)
	kvm := func(k *kernel.Kernel) []string {
		run := []string{"run", "--insecure-options=image", "--stage1-name=kvm", "--stage1-kvm-accel=tcg", "--net=none", id}
		if k.Kind != kernel.Small { // the small kernel is orbit's default
			run = append(run[:len(run)-1], "--stage1-kvm-kernel="+k.Path, id)
		}
		return run
	}
	nspawn := []string{"run", "--insecure-options=image", id}
	fly := []string{"run", "--insecure-options=image", "--stage1-name=fly", id}
	for _, run := range [][]string{kvm(small), kvm(packaged), nspawn, fly} {
		benchOrbit(b, e, run...) // warm: stage1 images, trees, initramfs
	}
	gc := func(int) { benchOrbit(b, e, "gc", "--grace-period=0s", "--expire-prepared=0s") }
	gc(0)
	benchCompare(b, gc,
		benchSide{"orbit-kvm-small", func(int) { benchOrbit(b, e, kvm(small)...) }},
		benchSide{"kvm-packaged", func(int) { benchOrbit(b, e, kvm(packaged)...) }},
		benchSide{"nspawn", func(int) { benchOrbit(b, e, nspawn...) }},
		benchSide{"fly", func(int) { benchOrbit(b, e, fly...) }},
	)
}

// TestKVMAccelAutoFallsBack: without --stage1-kvm-accel the pod still runs
// where KVM cannot boot the guest (as on the machines these tests were
// written on): orbit probes once, caches the answer in the store, and says
// so in one line when it falls back to TCG.
func TestKVMAccelAutoFallsBack(t *testing.T) {
	t.Parallel()
	requireKVM(t)
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/kvm-auto", "/bin/sh", "-c", "echo auto-ran")
	for i := 0; i < 2; i++ {
		r := e.run("run", "--stage1-name=kvm", "--net=none", "--insecure-options=image", aci)
		if r.Code != 0 || !strings.Contains(r.Stdout, "auto-ran") {
			t.Fatalf("run %d: %s", i, r)
		}
		var warnings []string
		for _, line := range strings.Split(strings.TrimSpace(r.Stderr), "\n") {
			if strings.Contains(line, "TCG") {
				warnings = append(warnings, line)
			}
		}
		if len(warnings) > 1 {
			t.Errorf("run %d: more than one line about the fallback: %s", i, r)
		}
		if _, err := os.Stat("/dev/kvm"); err != nil && len(warnings) != 1 {
			t.Errorf("run %d: no /dev/kvm and no warning about TCG: %s", i, r)
		}
	}
	if _, err := os.Stat("/dev/kvm"); err == nil {
		if cached, _ := filepath.Glob(filepath.Join(e.Dir, "cas", "kvm", "accel-*")); len(cached) != 1 {
			t.Errorf("the probe's answer is not cached once: %v", cached)
		}
	}
}
