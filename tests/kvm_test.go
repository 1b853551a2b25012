package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// kvmRun runs images in the kvm flavour without signature checks and
// without networking unless the arguments ask for some, saving the pod's
// UUID.
func (e *env) kvmRun(args ...string) (result, string) {
	e.t.Helper()
	uuidFile := filepath.Join(e.t.TempDir(), "uuid")
	pre := []string{"run", "--stage1-name=kvm", "--stage1-kvm-accel=tcg", "--insecure-options=image", "--uuid-file-save=" + uuidFile}
	if !givesNet(args) && e.NetNS == "" {
		pre = append(pre, "--net=none")
	}
	r := e.run(append(pre, args...)...)
	data, _ := os.ReadFile(uuidFile)
	return r, strings.TrimSpace(string(data))
}

// requireKVM is the prerequisite of every test that runs the kvm flavour:
// QEMU and a guest kernel.
func requireKVM(t testing.TB) {
	t.Helper()
	requireTool(t, "qemu-system-x86_64", "qemu-system-x86")
	kernels, _ := filepath.Glob("/boot/vmlinuz-*")
	require(t, len(kernels) > 0, "no guest kernel: install linux-image-amd64")
}

func TestKVMRunExitStatus(t *testing.T) {
	t.Parallel()
	requireKVM(t)
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/kvm-hello", "/bin/sh", "-c", "echo hello from the vm; echo to-stderr >&2; exit 3")
	r, uuid := e.kvmRun(aci)
	if r.Code != 3 {
		t.Fatalf("want the app's exit status 3: %s", r)
	}
	if !strings.Contains(r.Stdout, "hello from the vm\n") || strings.Contains(r.Stdout, "to-stderr") {
		t.Errorf("the app's stdout is not passed through alone:\n%s", r)
	}
	if !strings.Contains(r.Stderr, "to-stderr\n") {
		t.Errorf("the app's stderr is not passed through:\n%s", r)
	}
	st := e.mustRun("status", uuid).Stdout
	if !strings.Contains(st, "app-kvm-hello=3") {
		t.Errorf("status does not record the app's exit status:\n%s", st)
	}
}
