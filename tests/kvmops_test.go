package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// kvmOpsCache is the kvm flavour's cache in an env's store.
func kvmOpsCache(e *env) string { return filepath.Join(e.Dir, "cas", "kvm") }

// kvmOpsInitramfs lists the cached initramfs archives.
func kvmOpsInitramfs(t *testing.T, e *env) []string {
	t.Helper()
	got, err := filepath.Glob(filepath.Join(kvmOpsCache(e), "initramfs-*.cpio"))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// kvmOpsAge sets a file's times to age ago.
func kvmOpsAge(t *testing.T, path string, age time.Duration) {
	t.Helper()
	old := time.Now().Add(-age)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

func kvmOpsExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// TestKVMImageGCCollectsInitramfs: `orbit image gc` removes the kvm
// cache's initramfs archives and probe results not used within its grace
// period, but never the archive of a pod that is running, or that has
// exited and is not collected yet (its directory links the archive); once
// the pod is collected, the archive goes too, and the next pod builds it
// again.
func TestKVMImageGCCollectsInitramfs(t *testing.T) {
	t.Parallel()
	requireKVM(t)
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/kvm-gc", "/bin/sh", "-c", "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done")
	cmd, _, uuid := kvmStart(t, e, aci)

	archives := kvmOpsInitramfs(t, e)
	if len(archives) != 1 {
		t.Fatalf("want one cached initramfs after a kvm run, got %q", archives)
	}
	used := archives[0]
	own := filepath.Join(e.Dir, "pods", "run", uuid, "kvm-initrd.cpio")
	var a, b syscall.Stat_t
	if err := syscall.Stat(used, &a); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(own, &b); err != nil || a.Ino != b.Ino {
		t.Fatalf("the running pod does not hold its own link to the initramfs it boots (%s): %v", own, err)
	}
	// Old and unused, old but in use, fresh and unused.
	stale := filepath.Join(kvmOpsCache(e), "initramfs-00000000000000000000000000000000.cpio")
	staleProbe := filepath.Join(kvmOpsCache(e), "accel-00000000000000000000000000000000")
	fresh := filepath.Join(kvmOpsCache(e), "initramfs-11111111111111111111111111111111.cpio")
	for _, p := range []string{stale, staleProbe, fresh} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kvmOpsAge(t, stale, 48*time.Hour)
	kvmOpsAge(t, staleProbe, 48*time.Hour)
	kvmOpsAge(t, used, 48*time.Hour)

	r := e.mustRun("image", "gc", "--grace-period=1h")
	if kvmOpsExists(stale) || kvmOpsExists(staleProbe) {
		t.Errorf("image gc left stale kvm cache files:\n%s", r)
	}
	if !strings.Contains(r.Stdout, filepath.Base(stale)) {
		t.Errorf("image gc does not say what it removed:\n%s", r)
	}
	if !kvmOpsExists(fresh) {
		t.Errorf("image gc removed an initramfs used within the grace period")
	}
	if !kvmOpsExists(used) {
		t.Fatalf("image gc removed the initramfs of a running pod")
	}
	e.mustRun("image", "gc", "--grace-period=0s")
	if !kvmOpsExists(used) {
		t.Fatalf("image gc --grace-period=0s removed the initramfs of a running pod")
	}
	if kvmOpsExists(fresh) {
		t.Errorf("image gc --grace-period=0s kept an unused initramfs")
	}

	// Exited but not collected: still the pod's.
	e.mustRun("stop", uuid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the pod did not stop")
	}
	e.mustRun("image", "gc", "--grace-period=0s")
	if !kvmOpsExists(used) {
		t.Fatalf("image gc removed the initramfs of an exited pod that gc has not collected")
	}
	e.mustRun("gc", "--grace-period=0s")
	e.mustRun("image", "gc", "--grace-period=0s")
	if kvmOpsExists(used) {
		t.Errorf("image gc kept the initramfs of a collected pod")
	}

	// The next pod builds it again.
	r, _ = e.kvmRun(busyboxACI(t, "example.com/kvm-gc-again", "/bin/true"))
	if r.Code != 0 {
		t.Fatalf("a kvm pod after the cache was collected: %s", r)
	}
	if got := kvmOpsInitramfs(t, e); len(got) != 1 || got[0] != used {
		t.Errorf("want the same initramfs built again, got %q", got)
	}
}

// kvmOpsKernelCopy copies a guest kernel that boots here (the small one
// when built, else Debian's) into dir, with its configuration beside it
// (which says whether it has ACPI), and returns the copy's path: a kernel
// of the user's own.
func kvmOpsKernelCopy(t *testing.T, dir string) string {
	t.Helper()
	src, conf := "/var/cache/orbit/kvm-kernel/current/vmlinux", "/var/cache/orbit/kvm-kernel/current/config"
	if !kvmOpsExists(src) {
		images, _ := filepath.Glob("/boot/vmlinuz-*")
		require(t, len(images) > 0, "no guest kernel: install linux-image-amd64 or run make kvm-kernel")
		src, conf = images[len(images)-1], ""
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, filepath.Base(src))
	copyFile := func(from, to string) {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(src, dst)
	if conf != "" {
		copyFile(conf, dst+".config")
	}
	return dst
}

// kvmOpsBooting runs a kvm pod with --debug and the extra arguments and
// returns the kernel and accelerator it booted, from the run entrypoint's
// line "booting the <kernel> under <accel>".
func kvmOpsBooting(t *testing.T, e *env, aci string, args ...string) (string, string, result) {
	t.Helper()
	full := append([]string{"--debug", "run", "--stage1-name=kvm", "--net=none", "--insecure-options=image"}, args...)
	r := e.run(append(full, aci)...)
	if r.Code != 0 {
		t.Fatalf("kvm run %v: %s", args, r)
	}
	for _, line := range strings.Split(r.Stderr, "\n") {
		if _, rest, ok := strings.Cut(line, "booting the "); ok {
			i := strings.LastIndex(rest, " under ")
			if i < 0 {
				break
			}
			return rest[:i], strings.TrimSpace(rest[i+len(" under "):]), r
		}
	}
	t.Fatalf("kvm run %v: no line saying what boots: %s", args, r)
	return "", "", r
}

// TestKVMConfigKind: kvm.d in the configuration directories sets the kvm
// flavour's accelerator and kernel, the local directory's fields over the
// system one's; the environment wins over it and a flag over both; orbit
// config shows it; bad values fail before a pod is made.
func TestKVMConfigKind(t *testing.T) {
	t.Parallel()
	requireKVM(t)
	e := newEnv(t)
	root := t.TempDir()
	sysKernel := kvmOpsKernelCopy(t, filepath.Join(root, "sys"))
	localKernel := kvmOpsKernelCopy(t, filepath.Join(root, "local"))
	envKernel := kvmOpsKernelCopy(t, filepath.Join(root, "env"))
	flagKernel := kvmOpsKernelCopy(t, filepath.Join(root, "flag"))
	aci := busyboxACI(t, "example.com/kvm-config", "/bin/true")

	writeFile(t, filepath.Join(e.SystemCfg, "kvm.d", "kvm.json"), `{"rktKind":"kvm","rktVersion":"v1","accel":"kvm","kernel":"`+sysKernel+`"}`)
	writeFile(t, filepath.Join(e.LocalCfg, "kvm.d", "kvm.json"), `{"rktKind":"kvm","rktVersion":"v1","kernel":"`+localKernel+`"}`)
	writeFile(t, filepath.Join(e.LocalCfg, "kvm.d", "tcg.json"), `{"rktKind":"kvm","rktVersion":"v1","accel":"tcg"}`)

	var cfg struct {
		Stage0 []map[string]any `json:"stage0"`
	}
	out := e.mustRun("config").Stdout
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("config is not JSON: %v\n%s", err, out)
	}
	var kvm map[string]any
	for _, entry := range cfg.Stage0 {
		if entry["rktKind"] == "kvm" {
			kvm = entry
		}
	}
	if kvm == nil || kvm["accel"] != "tcg" || kvm["kernel"] != localKernel || kvm["rktVersion"] != "v1" {
		t.Fatalf("config does not show the merged kvm settings (local over system): %v\n%s", kvm, out)
	}

	// The configuration alone.
	kern, accel, _ := kvmOpsBooting(t, e, aci)
	if accel != "tcg" || !strings.Contains(kern, "("+localKernel+")") {
		t.Errorf("with kvm.d alone: booted %q under %q, want %s under tcg", kern, accel, localKernel)
	}
	// The environment over the configuration.
	e.ExtraEnv = []string{"ORBIT_KVM_KERNEL=" + envKernel, "ORBIT_KVM_ACCEL=tcg"}
	kern, _, _ = kvmOpsBooting(t, e, aci)
	if !strings.Contains(kern, "("+envKernel+")") {
		t.Errorf("$ORBIT_KVM_KERNEL does not win over kvm.d: booted %q", kern)
	}
	// A flag over both.
	kern, _, _ = kvmOpsBooting(t, e, aci, "--stage1-kvm-kernel="+flagKernel)
	if !strings.Contains(kern, "("+flagKernel+")") {
		t.Errorf("--stage1-kvm-kernel does not win over $ORBIT_KVM_KERNEL and kvm.d: booted %q", kern)
	}
	e.ExtraEnv = nil

	// Bad values fail, in one line naming kvm.d, before a pod is made.
	for _, bad := range []string{
		`{"rktKind":"kvm","rktVersion":"v1","accel":"fast"}`,
		`{"rktKind":"kvm","rktVersion":"v1","kernel":"` + filepath.Join(root, "missing") + `"}`,
		`{"rktKind":"kvm","rktVersion":"v1","kernel":"relative/vmlinux"}`,
		`{"rktKind":"kvm","rktVersion":"v2","accel":"tcg"}`,
	} {
		writeFile(t, filepath.Join(e.LocalCfg, "kvm.d", "zz-bad.json"), bad)
		r := e.run("run", "--stage1-name=kvm", "--net=none", "--insecure-options=image", aci)
		if r.Code == 0 || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 || !strings.Contains(r.Stderr, "kvm.d") && !strings.Contains(r.Stderr, "zz-bad.json") {
			t.Errorf("kvm.d %s: want a one-line error naming it: %s", bad, r)
		}
		if r := e.run("config"); r.Code == 0 {
			t.Errorf("config with kvm.d %s: want an error: %s", bad, r)
		}
	}
	if pods, _ := filepath.Glob(filepath.Join(e.Dir, "pods", "*", "*")); len(pods) != 3 {
		t.Errorf("a bad kvm.d made pods: %v", pods)
	}
}

// TestKVMStatusShowsKernel: without --debug, orbit status (tabbed and
// JSON) says which kernel a kvm pod's VM boots (kind, release, path) and
// under which accelerator, from the record its run leaves in the pod
// directory.
func TestKVMStatusShowsKernel(t *testing.T) {
	t.Parallel()
	requireKVM(t)
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/kvm-status", "/bin/true")

	// The kernel orbit finds itself.
	r, uuid := e.kvmRun(aci)
	if r.Code != 0 {
		t.Fatalf("kvm run: %s", r)
	}
	if strings.Contains(r.Stderr, "booting the") {
		t.Errorf("a run without --debug says what boots on stderr: %s", r)
	}
	st := e.mustRun("status", uuid).Stdout
	fields := map[string]string{}
	for _, line := range strings.Split(st, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			fields[k] = v
		}
	}
	if kind := fields["kvm-kernel-kind"]; kind != "small" && kind != "packaged" {
		t.Errorf("status: kvm-kernel-kind %q, want small or packaged:\n%s", kind, st)
	}
	if p := fields["kvm-kernel"]; !filepath.IsAbs(p) || !kvmOpsExists(p) {
		t.Errorf("status: kvm-kernel %q is not the kernel's path:\n%s", p, st)
	}
	if fields["kvm-kernel-version"] == "" || fields["kvm-accel"] != "tcg" {
		t.Errorf("status: no kernel release or accelerator tcg:\n%s", st)
	}
	if !kvmOpsExists(filepath.Join(e.Dir, "pods", "exited-garbage", uuid, "kvm-boot.json")) && !kvmOpsExists(filepath.Join(e.Dir, "pods", "run", uuid, "kvm-boot.json")) {
		t.Errorf("no kvm-boot.json in the pod directory")
	}

	// A kernel of the user's own, in JSON.
	own := kvmOpsKernelCopy(t, filepath.Join(t.TempDir(), "own"))
	r, uuid = e.kvmRun("--stage1-kvm-kernel="+own, aci)
	if r.Code != 0 {
		t.Fatalf("kvm run with a kernel of our own: %s", r)
	}
	var pj struct {
		KVM *struct {
			KernelKind    string `json:"kernelKind"`
			KernelVersion string `json:"kernelVersion"`
			KernelPath    string `json:"kernelPath"`
			Accel         string `json:"accel"`
		} `json:"kvm"`
	}
	out := e.mustRun("status", "--format=json", uuid).Stdout
	if err := json.Unmarshal([]byte(out), &pj); err != nil || pj.KVM == nil {
		t.Fatalf("status --format=json has no kvm object: %v\n%s", err, out)
	}
	if pj.KVM.KernelKind != "user" || pj.KVM.KernelPath != own || pj.KVM.Accel != "tcg" || pj.KVM.KernelVersion != fields["kvm-kernel-version"] && fields["kvm-kernel-kind"] == "small" {
		t.Errorf("status --format=json: %+v, want the user kernel %s under tcg", *pj.KVM, own)
	}
}

// TestKVMMissingQEMUOrKernelRefusedUpFront: on a host without QEMU, or
// without a guest kernel, a kvm run or prepare fails in one line naming
// what to install, before anything is fetched or a pod is made.
func TestKVMMissingQEMUOrKernelRefusedUpFront(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/kvm-noqemu", "/bin/true")
	for _, args := range [][]string{{"run", "--net=none"}, {"prepare"}} {
		verb := args[0]
		cmd := e.command(append(args, "--insecure-options=image", "--stage1-name=kvm", aci)...)
		cmd.Env = append(cmd.Env, "PATH="+t.TempDir())
		r := runCommand(t, cmd)
		if r.Code == 0 || !strings.Contains(r.Stderr, "install the package qemu-system-x86") || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
			t.Errorf("%s without QEMU: want one line naming qemu-system-x86, got %s", verb, r)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(e.Dir, "pods")); len(entries) != 0 {
		for _, d := range entries {
			if sub, _ := os.ReadDir(filepath.Join(e.Dir, "pods", d.Name())); len(sub) != 0 {
				t.Errorf("a pod was made: pods/%s has %d entries", d.Name(), len(sub))
			}
		}
	}
	if r := e.run("image", "list", "--no-legend"); strings.Contains(r.Stdout, "kvm-noqemu") {
		t.Errorf("the image was fetched before the refusal:\n%s", r.Stdout)
	}
}
