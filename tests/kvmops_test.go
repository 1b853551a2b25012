package tests

import (
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
