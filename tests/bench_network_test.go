package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkNetworkSetup times what a contained network costs `orbit run`:
// a stored image whose app is /bin/true run on --net=default (a network
// namespace, a ptp veth pair, a host-local address, masquerading, and all
// of it undone when the pod ends) against the same run on --net=host, and,
// when podman is installed, against `podman run --network=bridge` of the
// same root filesystem. Everything runs in a network namespace the
// benchmark makes, so no interface or rule reaches the machine's own.
func BenchmarkNetworkSetup(b *testing.B) {
	e, ns := networkEnv(b)
	rootfs := busyboxRootfs(b)
	if err := os.MkdirAll(filepath.Join(rootfs, "usr"), 0o755); err != nil {
		b.Fatal(err)
	}
	writeFile(b, filepath.Join(rootfs, "etc/os-release"), "ID=busybox\nNAME=busybox\n")
	aci := writeACI(b, filepath.Join(b.TempDir(), "true.aci"), rootfs, imageManifest("example.com/bench-net", "/bin/true"))
	id := strings.TrimSpace(benchOrbit(b, e, "fetch", "--full", "--insecure-options=image", aci))
	run := func(net string) []string { return []string{"run", "--insecure-options=image", "--net=" + net, id} }
	benchOrbit(b, e, run("default")...) // warm: stage1 import, tree render, first lease
	gc := func(int) { benchOrbit(b, e, "gc", "--grace-period=0s", "--expire-prepared=0s") }
	gc(0)
	peers := []benchSide{{"host-net", func(int) { benchOrbit(b, e, run("host")...) }}}
	if podman, err := exec.LookPath("podman"); err == nil {
		tag := "localhost/orbit-bench-net:latest"
		tarball := filepath.Join(b.TempDir(), "rootfs.tar")
		benchExec(b, "tar", "-C", rootfs, "-cf", tarball, ".")
		benchExec(b, podman, "import", tarball, tag)
		b.Cleanup(func() { exec.Command(podman, "rmi", "-f", tag).Run() })
		peers = append(peers, benchSide{"podman-bridge", func(int) {
			benchExec(b, "nsenter", "--net=/run/netns/"+ns, podman, "run", "--rm", "--network=bridge", tag, "/bin/true")
		}})
	}
	benchCompare(b, gc, benchSide{"orbit-default-net", func(int) { benchOrbit(b, e, run("default")...) }}, peers...)
}
