package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/orbit-containers/orbit/internal/idmap"
)

// The tests in this file run pods with --private-users: in a user namespace
// whose root is an unprivileged range of the host's user IDs.

// usernsFindProcess waits for the host process whose command line is
// exactly cmdline and returns its PID.
func usernsFindProcess(t testing.TB, cmdline string, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, f := range dirs {
			b, err := os.ReadFile(f)
			if err == nil && strings.TrimRight(strings.ReplaceAll(string(b), "\x00", " "), " ") == cmdline {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
				return pid
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no process %q appeared", cmdline)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// usernsIDs reads a process's real user and group IDs as the host sees
// them, from /proc/PID/status.
func usernsIDs(t testing.TB, pid int) (uid, gid int) {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && f[0] == "Uid:" {
			uid, _ = strconv.Atoi(f[1])
		}
		if len(f) > 1 && f[0] == "Gid:" {
			gid, _ = strconv.Atoi(f[1])
		}
	}
	return uid, gid
}

// usernsRange reads the user namespace range orbit recorded for a pod.
func usernsRange(t testing.TB, e *env, uuid string) (shift, count int) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(e.Dir, "pods", "*", uuid, "orbit.json"))
	if len(files) != 1 {
		t.Fatalf("pod %s: no record (%v)", uuid, files)
	}
	data, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		PrivateUsers string `json:"privateUsers"`
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Sscanf(rec.PrivateUsers, "%d:%d", &shift, &count); err != nil {
		t.Fatalf("pod %s recorded privateUsers %q", uuid, rec.PrivateUsers)
	}
	return shift, count
}

// usernsStart starts `orbit run` in the background and returns it with
// the file its pod's UUID is saved to.
func usernsStart(t testing.TB, e *env, args ...string) (*exec.Cmd, func() string) {
	t.Helper()
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	cmd := e.command(append([]string{"run", "--insecure-options=image", "--uuid-file-save=" + uuidFile}, args...)...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("orbit run's output:\n%s", out.String())
		}
	})
	return cmd, func() string {
		data, _ := os.ReadFile(uuidFile)
		return strings.TrimSpace(string(data))
	}
}

// TestUsernsRun: a --private-users pod's app is root inside and a high,
// unprivileged user on the host; what it cannot do as such fails; it
// writes into a host volume; enter joins it; it stops, and gc removes it.
func TestUsernsRun(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	vol := t.TempDir()
	aci := busyboxACI(t, "example.com/userns", "/bin/sh", "-c",
		"echo inside=$(id -u):$(id -g); echo written > /vol/from-pod; "+
			"if mknod /tmp/null c 1 3 2>/dev/null; then echo mknod=ok; else echo mknod=denied; fi; "+
			"exec sleep 7001")
	cmd, uuidOf := usernsStart(t, e, "--private-users", "--volume=vol,kind=host,source="+vol, aci, "--mount=volume=vol,target=/vol")
	pid := usernsFindProcess(t, "sleep 7001", 60*time.Second)
	uuid := uuidOf()
	shift, count := usernsRange(t, e, uuid)
	if shift < 0x80000 || count != 65536 {
		t.Errorf("the pod's range is %d:%d, want 65536 IDs above 524288", shift, count)
	}
	if uid, gid := usernsIDs(t, pid); uid != shift || gid != shift {
		t.Errorf("the app runs as %d:%d on the host, want the range's root %d:%d", uid, gid, shift, shift)
	}
	// The host volume got the file; its owner is the pod's root as the
	// host sees it through the volume (idmapped: root; else the shift).
	var st syscall.Stat_t
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Stat(filepath.Join(vol, "from-pod"), &st) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the app wrote nothing into its host volume")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if st.Uid != 0 && int(st.Uid) != shift {
		t.Errorf("the file the app wrote into the host volume is owned by %d", st.Uid)
	}
	// The store's trees are the pod's lower layers ID-mapped where the
	// kernel and the store's filesystem allow it, so the pod's overlays
	// copy nothing up to give the pod its files.
	mapped := usernsIDMappable(t, e.Dir, shift)
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	got := false
	for _, line := range strings.Split(string(mounts), "\n") {
		if f := strings.Fields(line); len(f) > 5 && strings.Contains(f[4], uuid+"/overlay/") && strings.HasSuffix(f[4], "/lower-idmapped") {
			got = strings.Contains(","+f[5]+",", ",idmapped,")
		}
	}
	if got != mapped {
		t.Errorf("ID-mapped lower layers mounted: %v; the store's filesystem allows them: %v", got, mapped)
	}
	uppers, _ := filepath.Glob(filepath.Join(e.Dir, "pods", "run", uuid, "overlay", "*", "upper", "userns", "bin", "busybox"))
	if mapped && len(uppers) != 0 {
		t.Errorf("the app's files were copied up although its tree is ID-mapped: %v", uppers)
	}
	if !mapped && len(uppers) == 0 {
		t.Error("the app's tree is not ID-mapped, and its files were not chowned into the overlay's upper layer")
	}
	// enter joins the user namespace too: root inside, the range outside.
	r := e.mustRun("enter", uuid, "/bin/sh", "-c", "id -u; cat /proc/self/uid_map")
	if f := strings.Fields(r.Stdout); len(f) < 4 || f[0] != "0" || f[1] != "0" || f[2] != strconv.Itoa(shift) {
		t.Errorf("enter: want root in the pod's user namespace, got:\n%s", r.Stdout)
	}
	e.mustRun("stop", uuid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the pod did not stop")
	}
	out := fmt.Sprint(cmd.Stdout)
	if !strings.Contains(out, "inside=0:0") {
		t.Errorf("the app is not root inside its pod:\n%s", out)
	}
	if !strings.Contains(out, "mknod=denied") {
		t.Errorf("the app could make a device node, which only the host's root can:\n%s", out)
	}
	e.mustRun("gc", "--grace-period=0s")
	if left, _ := filepath.Glob(filepath.Join(e.Dir, "pods", "*", uuid)); len(left) != 0 {
		t.Errorf("gc left the pod: %v", left)
	}
	// The store's trees were not handed to the pod.
	trees := usernsStoreFiles(t, e, "bin/busybox")
	for _, f := range trees {
		if err := syscall.Lstat(f, &st); err != nil || st.Uid != 0 {
			t.Errorf("the store's %s is owned by %d (%v)", f, st.Uid, err)
		}
	}
	if len(trees) == 0 {
		t.Error("found no store tree to check")
	}
}

// usernsStoreFiles lists the files at rel in every rendered tree of the
// env's store.
func usernsStoreFiles(t testing.TB, e *env, rel string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(e.Dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == "trees" {
			found, _ := filepath.Glob(filepath.Join(path, "*", "rootfs", rel))
			out = append(out, found...)
			return filepath.SkipDir
		}
		if err == nil && d.IsDir() && d.Name() == "pods" {
			return filepath.SkipDir
		}
		return nil
	})
	return out
}

// TestUsernsLimitsNetworkAndCopies: a --private-users pod prepared and run
// later keeps its range; in its own (default) network, with memory and
// CPU limits its supervisor sets from inside the user namespace, and with
// copies of the images' trees (--no-overlay), chowned, while the store's
// stay the host root's. An empty volume is the pod's root's.
func TestUsernsLimitsNetworkAndCopies(t *testing.T) {
	t.Parallel()
	e, _ := networkEnv(t)
	aci := busyboxACI(t, "example.com/userns-limits", "/bin/sh", "-c",
		"echo inside=$(id -u); ls -ln /bin/busybox; ip -o -4 addr show scope global | grep -c inet | sed s/^/addrs=/; "+
			"stat -c empty=%u:%g:%a /scratch; echo x > /scratch/f && echo scratch=ok; "+
			"cat /proc/self/cgroup | sed s/^/cg:/; "+
			"for f in memory/userns-limits/memory.limit_in_bytes cpu/userns-limits/cpu.cfs_quota_us; do echo $f=$(cat /sys/fs/cgroup/$f); done")
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	e.mustRun("prepare", "--insecure-options=image", "--private-users", "--no-overlay", "--uuid-file-save="+uuidFile,
		"--volume=scratch,kind=empty,mode=0750,uid=0,gid=0", aci, "--mount=volume=scratch,target=/scratch", "--memory=64M", "--cpu=500m")
	data, _ := os.ReadFile(uuidFile)
	uuid := strings.TrimSpace(string(data))
	shift, _ := usernsRange(t, e, uuid)
	r := e.run("run-prepared", uuid)
	if r.Code != 0 {
		t.Fatalf("run-prepared: %s", r)
	}
	for _, want := range []string{"inside=0", " 0 ", "addrs=1", "empty=0:0:750", "scratch=ok",
		"memory.limit_in_bytes=64000000", "cpu.cfs_quota_us=50000"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("the pod's output lacks %q:\n%s", want, r.Stdout)
		}
	}
	if again, _ := usernsRange(t, e, uuid); again != shift {
		t.Errorf("the pod's range moved from %d to %d between prepare and run", shift, again)
	}
	// The app's cgroup, as the supervisor made it below the pod's, holds
	// the limits.
	var appCg string
	for _, line := range strings.Split(r.Stdout, "\n") {
		if f := strings.SplitN(strings.TrimPrefix(line, "cg:"), ":", 3); strings.HasPrefix(line, "cg:") && len(f) == 3 && strings.Contains(f[1], "memory") {
			appCg = f[2]
		}
	}
	if !strings.HasSuffix(appCg, "/userns-limits") {
		t.Errorf("the app is not in a memory cgroup of its own (%q):\n%s", appCg, r.Stdout)
	}
	if trees := usernsStoreFiles(t, e, "bin/busybox"); len(trees) == 0 {
		t.Error("found no store tree to check")
	} else {
		for _, f := range trees {
			var st syscall.Stat_t
			if err := syscall.Lstat(f, &st); err != nil || st.Uid != 0 {
				t.Errorf("the store's %s is owned by %d (%v)", f, st.Uid, err)
			}
		}
	}
}

// TestUsernsFlyRefuses: fly has no user namespace; it says so in one line,
// before a pod is made.
func TestUsernsFlyRefuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.run("run", "--insecure-options=image", "--stage1-name=fly", "--private-users", busyboxACI(t, "example.com/userns-fly", "/bin/true"))
	if r.Code != 254 || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 || !strings.Contains(r.Stderr, "--private-users: the fly flavour cannot run a pod in a user namespace") {
		t.Errorf("want one line refusing --private-users under fly, got %s", r)
	}
	if out := e.mustRun("list", "--no-legend").Stdout; strings.TrimSpace(out) != "" {
		t.Errorf("a pod was made:\n%s", out)
	}
}

// TestUsernsMetadata: an app of a --private-users pod reaches the metadata
// service with the token its pod was registered with.
func TestUsernsMetadata(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	mdsStart(t, e, nil, "--listen-port="+strconv.Itoa(mdsFreePort(t)), "--listen-address=127.0.0.1")
	aci := busyboxACI(t, "example.com/userns-mds", "/bin/sh", "-c", `echo "uid=$(id -u) pod=$(wget -q -O- $AC_METADATA_URL/acMetadata/v1/pod/uuid)"`)
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	r := e.mustRun("run", "--insecure-options=image", "--private-users", "--mds-register", "--uuid-file-save="+uuidFile, aci)
	data, _ := os.ReadFile(uuidFile)
	if want := "uid=0 pod=" + strings.TrimSpace(string(data)); !strings.Contains(r.Stdout, want) {
		t.Errorf("want %q from the app, got:\n%s", want, r)
	}
}

// usernsIDMappable reports whether dir's filesystem can be ID-mapped into
// the range starting at shift on this kernel.
func usernsIDMappable(t testing.TB, dir string, shift int) bool {
	t.Helper()
	ns, err := idmap.UserNamespace(idmap.Range{Shift: uint32(shift), Count: 65536})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	return idmap.Supported(dir, ns) == nil
}

// TestUsernsRangesApart: pods prepared at the same time get ranges of
// their own.
func TestUsernsRangesApart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	aci := busyboxACI(t, "example.com/userns-apart", "/bin/true")
	e.mustRun("fetch", "--insecure-options=image", aci)
	const n = 4
	uuids := make(chan string, n)
	for i := 0; i < n; i++ {
		go func() {
			f := filepath.Join(t.TempDir(), "uuid")
			r := e.run("prepare", "--insecure-options=image", "--private-users", "--uuid-file-save="+f, aci)
			data, _ := os.ReadFile(f)
			if r.Code != 0 {
				t.Errorf("prepare: %s", r)
			}
			uuids <- strings.TrimSpace(string(data))
		}()
	}
	seen := map[int]string{}
	for i := 0; i < n; i++ {
		uuid := <-uuids
		if uuid == "" {
			continue
		}
		shift, _ := usernsRange(t, e, uuid)
		if other, ok := seen[shift]; ok {
			t.Errorf("pods %s and %s share the range at %d", other, uuid, shift)
		}
		seen[shift] = uuid
	}
}

// usernsExt2 mounts a fresh ext2 filesystem (a loop device on a sparse
// file) at dir: the kernel's ext2 driver does not allow ID-mapped mounts.
// It is unmounted when the test ends.
func usernsExt2(t testing.TB, dir string) {
	t.Helper()
	requireTool(t, "mkfs.ext2", "e2fsprogs")
	img := filepath.Join(t.TempDir(), "ext2.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 256<<20); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mkfs.ext2", "-q", "-F", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext2: %v: %s", err, out)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "ext2", "-o", "loop", img, dir).CombinedOutput(); err != nil {
		t.Fatalf("mounting an ext2 image: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

// TestUsernsChownFallback: where the store's filesystem cannot be
// ID-mapped (ext2 here), the pod's files are chowned into its overlays'
// upper layers instead, the store's tree keeps its owners, and a host
// volume that cannot be ID-mapped is bound as it is, with a warning: the
// pod writes there as its range's root once the host has given the
// directory to it.
func TestUsernsChownFallback(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	usernsExt2(t, filepath.Join(e.Dir, "cas", "trees"))
	vol := filepath.Join(t.TempDir(), "vol")
	usernsExt2(t, vol)
	aci := busyboxACI(t, "example.com/userns-chown", "/bin/sh", "-c", "ls -ln /bin/busybox; echo written > /vol/from-pod && echo vol=ok")
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	e.mustRun("prepare", "--insecure-options=image", "--private-users", "--uuid-file-save="+uuidFile,
		"--volume=vol,kind=host,source="+vol, aci, "--mount=volume=vol,target=/vol")
	data, _ := os.ReadFile(uuidFile)
	uuid := strings.TrimSpace(string(data))
	shift, _ := usernsRange(t, e, uuid)
	if usernsIDMappable(t, filepath.Join(e.Dir, "cas", "trees"), shift) {
		t.Fatal("ext2 can be ID-mapped on this kernel; the test needs another filesystem")
	}
	if err := os.Chown(vol, shift, shift); err != nil {
		t.Fatal(err)
	}
	r := e.run("run-prepared", uuid)
	if r.Code != 0 || !strings.Contains(r.Stdout, "vol=ok") || !strings.Contains(r.Stderr, "cannot be ID-mapped") {
		t.Fatalf("run-prepared: want the app to write into the volume, and a warning: %s", r)
	}
	if f := strings.Fields(r.Stdout); len(f) < 4 || f[2] != "0" || f[3] != "0" {
		t.Errorf("the app's files are not root's inside the pod:\n%s", r.Stdout)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(vol, "from-pod"), &st); err != nil || int(st.Uid) != shift {
		t.Errorf("the file the pod wrote into the volume is owned by %d (%v), want %d", st.Uid, err, shift)
	}
	uppers, _ := filepath.Glob(filepath.Join(e.Dir, "pods", "*", uuid, "overlay", "*", "upper", "userns-chown", "bin", "busybox"))
	if len(uppers) != 1 {
		t.Fatalf("the app's files were not chowned into its overlay's upper layer (%v)", uppers)
	}
	if err := syscall.Lstat(uppers[0], &st); err != nil || int(st.Uid) != shift {
		t.Errorf("the pod's copy of busybox is owned by %d (%v), want %d", st.Uid, err, shift)
	}
	trees := usernsStoreFiles(t, e, "bin/busybox")
	if len(trees) == 0 {
		t.Fatal("found no store tree to check")
	}
	for _, f := range trees {
		if err := syscall.Lstat(f, &st); err != nil || st.Uid != 0 {
			t.Errorf("the store's %s is owned by %d (%v)", f, st.Uid, err)
		}
	}
	e.mustRun("gc", "--grace-period=0s")
	if left, _ := filepath.Glob(filepath.Join(e.Dir, "pods", "*", uuid)); len(left) != 0 {
		t.Errorf("gc left the pod and its chowned copies: %v", left)
	}
}

// TestUsernsLayeredOCIImage: a layered OCI image's pod in a user namespace
// sees every layer as its own users' (each layer tree ID-mapped, or the
// files chowned into the overlay's upper layer), with the layers'
// whiteouts honoured, and the store's layer trees stay root's.
func TestUsernsLayeredOCIImage(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	pair := ociLayersImages(t)
	e := newEnv(t)
	ref := "oci:" + ociWriteLayout(t, pair.a, "v1") + ":v1"
	id := strings.TrimSpace(e.mustRun("fetch", "--insecure-options=image", ref).Stdout)
	cmd, uuidOf := usernsStart(t, e, "--private-users", id, "--exec=/bin/sh", "--",
		"-c", ociLayersCmdA+"; echo owner=$(stat -c %u /bin/busybox) uid=$(id -u); exec sleep 7002")
	pid := usernsFindProcess(t, "sleep 7002", 60*time.Second)
	uuid := uuidOf()
	shift, _ := usernsRange(t, e, uuid)
	if uid, _ := usernsIDs(t, pid); uid != shift {
		t.Errorf("the app runs as %d on the host, want the range's root %d", uid, shift)
	}
	// Each of the image's three layer trees is its own ID-mapped lower
	// layer where the store's filesystem allows it.
	if usernsIDMappable(t, e.Dir, shift) {
		mounts, _ := os.ReadFile("/proc/self/mountinfo")
		layers := 0
		for _, line := range strings.Split(string(mounts), "\n") {
			if f := strings.Fields(line); len(f) > 5 && strings.Contains(f[4], uuid+"/overlay/layer-") &&
				strings.HasSuffix(f[4], "/lower-idmapped") && strings.Contains(","+f[5]+",", ",idmapped,") {
				layers++
			}
		}
		if layers != 3 {
			t.Errorf("%d ID-mapped layer trees mounted for the pod, want 3", layers)
		}
	}
	e.mustRun("stop", uuid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the pod did not stop")
	}
	out := fmt.Sprint(cmd.Stdout)
	for _, line := range strings.Split(strings.TrimSpace(ociLayersWantA), "\n") {
		if !strings.Contains(out, line) {
			t.Fatalf("want %q in the app's output:\n%s", line, out)
		}
	}
	if !strings.Contains(out, "owner=0 uid=0") {
		t.Errorf("the app's files are not its root's inside its user namespace:\n%s", out)
	}
	e.mustRun("gc", "--grace-period=0s")
	trees, _ := filepath.Glob(filepath.Join(e.Dir, "cas", "layertrees", "*", "rootfs", "bin", "busybox"))
	if len(trees) == 0 {
		t.Fatal("found no layer tree to check")
	}
	for _, f := range trees {
		var st syscall.Stat_t
		if err := syscall.Lstat(f, &st); err != nil || st.Uid != 0 {
			t.Errorf("the store's %s is owned by %d (%v)", f, st.Uid, err)
		}
	}
}
