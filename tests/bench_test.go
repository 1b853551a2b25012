package tests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The benchmarks here time orbit and a peer doing the same job in the same
// invocation and report orbit's time as a ratio of the peer's, so a slow or
// noisy machine moves both sides alike. They never assert on a duration.
//
// Each benchmark reports:
//
//	ns/op           orbit's mean time per operation
//	<peer>-ns/op    the peer's mean time per operation
//	x-vs-<peer>     orbit's time divided by the peer's (1.0 means as fast)

// benchSide is one contender of an interleaved comparison: do performs one
// operation (iteration i) and fails the benchmark if it does not succeed.
type benchSide struct {
	name string
	do   func(i int)
}

// benchCompare runs orbit and each peer b.N times, interleaved so that
// machine noise hits all of them alike, rotating who goes first in each
// round so none always runs on the caches another just warmed. between, if
// not nil, runs untimed after every round (clean-up that is not part of the
// operation being measured). The benchmark's own timer is not used: each
// side is timed on its own and the results are reported as metrics, with
// ns/op standing for orbit. It returns each side's mean nanoseconds per
// operation, orbit first.
func benchCompare(b *testing.B, between func(i int), orbit benchSide, peers ...benchSide) []float64 {
	b.Helper()
	b.StopTimer()
	sides := append([]benchSide{orbit}, peers...)
	totals := make([]time.Duration, len(sides))
	for i := 0; i < b.N; i++ {
		for k := range sides {
			j := (i + k) % len(sides)
			start := time.Now()
			sides[j].do(i)
			totals[j] += time.Since(start)
		}
		if between != nil {
			between(i)
		}
	}
	perOp := make([]float64, len(sides))
	for j, d := range totals {
		perOp[j] = float64(d.Nanoseconds()) / float64(b.N)
	}
	b.ReportMetric(perOp[0], "ns/op")
	for j, p := range peers {
		b.ReportMetric(perOp[j+1], p.name+"-ns/op")
		if perOp[j+1] > 0 {
			b.ReportMetric(perOp[0]/perOp[j+1], "x-vs-"+p.name)
		}
	}
	return perOp
}

// benchExec runs a command to completion and fails the benchmark, with the
// command's output, unless it exits 0. Its output is otherwise discarded.
func benchExec(b *testing.B, name string, args ...string) {
	b.Helper()
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
}

// benchOrbit runs orbit in e like benchExec, returning its stdout.
func benchOrbit(b *testing.B, e *env, args ...string) string {
	b.Helper()
	r := e.run(args...)
	if r.Code != 0 {
		b.Fatalf("orbit %s: %s", strings.Join(args, " "), r)
	}
	return r.Stdout
}

// benchTrueImage makes a busybox root filesystem whose app is /bin/true,
// with what systemd-nspawn wants of a container tree (/usr and
// /etc/os-release), fetches it into a fresh orbit installation and returns
// the installation, the image ID and the root filesystem for the peers.
func benchTrueImage(b *testing.B) (*env, string, string) {
	b.Helper()
	rootfs := busyboxRootfs(b)
	if err := os.MkdirAll(filepath.Join(rootfs, "usr"), 0o755); err != nil {
		b.Fatal(err)
	}
	writeFile(b, filepath.Join(rootfs, "etc/os-release"), "ID=busybox\nNAME=busybox\n")
	aci := writeACI(b, filepath.Join(b.TempDir(), "true.aci"), rootfs, imageManifest("example.com/bench-true", "/bin/true"))
	e := newEnv(b)
	id := strings.TrimSpace(benchOrbit(b, e, "fetch", "--full", "--insecure-options=image", aci))
	return e, id, rootfs
}

// BenchmarkStartupFly times `orbit run` of a stored image in the fly
// flavour (chroot, no isolation beyond a mount namespace) whose app is
// /bin/true, against chroot and `unshare -m chroot` into the same rootfs.
// Stage1 is imported and the app's tree rendered before timing starts;
// exited pods are collected, untimed, after every round.
func BenchmarkStartupFly(b *testing.B) {
	for _, tool := range []string{"chroot", "unshare"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s is needed as the peer: %v", tool, err)
		}
	}
	e, id, rootfs := benchTrueImage(b)
	run := []string{"run", "--insecure-options=image", "--stage1-name=fly", id}
	benchOrbit(b, e, run...) // warm: stage1 import and tree render
	gc := func(int) { benchOrbit(b, e, "gc", "--grace-period=0s", "--expire-prepared=0s") }
	gc(0)
	benchCompare(b, gc,
		benchSide{"orbit", func(int) { benchOrbit(b, e, run...) }},
		benchSide{"chroot", func(int) { benchExec(b, "chroot", rootfs, "/bin/true") }},
		benchSide{"unshare-chroot", func(int) { benchExec(b, "unshare", "-m", "chroot", rootfs, "/bin/true") }},
	)
}

// BenchmarkStartupNspawn times `orbit run` of a stored image in the default
// (nspawn) flavour whose app is /bin/true, against systemd-nspawn running
// /bin/true directly in an equivalent rootfs, with the flags orbit passes
// that change what nspawn itself does (--keep-unit, --link-journal=no,
// --console=pipe, and --register=no, which orbit passes only when there is
// no system bus to register with). orbit starts nspawn on its stage1 with
// its pod supervisor as PID 1 and the app's tree bound in, so the ratio is
// what that pod machinery costs over bare nspawn.
func BenchmarkStartupNspawn(b *testing.B) {
	requireNspawn(b) // orbit's own prerequisite, not only the peer's
	e, id, rootfs := benchTrueImage(b)
	run := []string{"run", "--insecure-options=image", id}
	benchOrbit(b, e, run...) // warm: stage1 import and tree render
	gc := func(int) { benchOrbit(b, e, "gc", "--grace-period=0s", "--expire-prepared=0s") }
	gc(0)
	benchCompare(b, gc,
		benchSide{"orbit", func(int) { benchOrbit(b, e, run...) }},
		benchSide{"nspawn", func(int) {
			benchExec(b, "systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--link-journal=no", "--console=pipe", "-D", rootfs, "/bin/true")
		}},
	)
}
