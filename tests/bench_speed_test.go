package tests

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/orbit-containers/orbit/store"
)

// The bench table's rows for the run path, fetch, render, scale and
// memory (see benchtable_test.go for the machinery).

// speedBenchRootfs makes the busybox root filesystem every startup row
// runs /bin/true in, with what systemd-nspawn wants of an OS tree, and an
// installation holding it as an image; it returns the installation, the
// image ID and the rootfs.
func speedBenchRootfs(t *benchTable, name string) (*env, string, string) {
	t.t.Helper()
	rootfs := busyboxRootfs(t.t)
	if err := os.MkdirAll(filepath.Join(rootfs, "usr"), 0o755); err != nil {
		t.t.Fatal(err)
	}
	writeFile(t.t, filepath.Join(rootfs, "etc/os-release"), "ID=busybox\nNAME=busybox\n")
	aci := writeACI(t.t, filepath.Join(t.t.TempDir(), "true.aci"), rootfs, imageManifest(name, "/bin/true"))
	e := newEnv(t.t)
	id := strings.TrimSpace(e.mustRun("fetch", "--full", "--insecure-options=image", aci).Stdout)
	return e, id, rootfs
}

// speedBenchPeers returns the peers installed that can run here, each
// running /bin/true in rootfs as a container of its own kind.
func speedBenchPeers(t *benchTable, rootfs string) []benchOp {
	t.t.Helper()
	type peer struct {
		name string
		argv func(i int) []string
	}
	var peers []peer
	for _, rt := range []string{"runc", "crun"} {
		bin, err := exec.LookPath(rt)
		if err != nil {
			continue
		}
		bundle := t.t.TempDir()
		benchRun(t.t, "sh", "-c", "cd "+bundle+" && "+bin+" spec")
		path := filepath.Join(bundle, "config.json")
		data, err := os.ReadFile(path)
		if err != nil {
			t.t.Fatal(err)
		}
		var spec map[string]any
		if err := json.Unmarshal(data, &spec); err != nil {
			t.t.Fatal(err)
		}
		spec["root"] = map[string]any{"path": rootfs, "readonly": true}
		proc := spec["process"].(map[string]any)
		proc["terminal"] = false
		proc["args"] = []string{"/bin/true"}
		data, _ = json.Marshal(spec)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.t.Fatal(err)
		}
		name := rt
		peers = append(peers, peer{name, func(i int) []string {
			return []string{bin, "run", "--bundle", bundle, fmt.Sprintf("orbit-bench-%s-%d-%d", name, os.Getpid(), i)}
		}})
	}
	if bwrap, err := exec.LookPath("bwrap"); err == nil {
		peers = append(peers, peer{"bwrap", func(int) []string {
			return []string{bwrap, "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--bind", rootfs, "/", "--proc", "/proc", "--dev", "/dev", "/bin/true"}
		}})
	}
	if podman, err := exec.LookPath("podman"); err == nil {
		tag := fmt.Sprintf("localhost/orbit-bench-%d:latest", os.Getpid())
		tarball := filepath.Join(t.t.TempDir(), "rootfs.tar")
		benchRun(t.t, "tar", "-C", rootfs, "-cf", tarball, ".")
		benchRun(t.t, podman, "import", "-q", tarball, tag)
		t.t.Cleanup(func() { exec.Command(podman, "rmi", "-f", tag).Run() })
		peers = append(peers, peer{"podman", func(int) []string {
			return []string{podman, "run", "--rm", "--network=host", tag, "/bin/true"}
		}})
	}
	// A peer that cannot run here (crun on a hybrid host whose cgroup2
	// tree has controllers, say) is left out, and said so.
	var usable []benchOp
	for _, p := range peers {
		argv := p.argv(-1)
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			t.note("peer %s left out: it cannot run a container on this host: %v: %s", p.name, err, bytes.TrimSpace(out))
			continue
		}
		usable = append(usable, benchOp{p.name, func(i int) {
			argv := p.argv(i)
			benchRun(t.t, argv[0], argv[1:]...)
		}})
	}
	return usable
}

// speedBenchStartup adds the startup rows: a fly and an nspawn run of
// /bin/true in a stored image, against unshare+chroot and bare nspawn.
func speedBenchStartup(t *benchTable) {
	e, id, rootfs := speedBenchRootfs(t, "example.com/bench-true")
	gc := func(int) { e.mustRun("gc", "--grace-period=0s", "--expire-prepared=0s") }
	fly := []string{"run", "--insecure-options=image", "--stage1-name=fly", id}
	e.mustRun(fly...) // warm: stage1 imported, trees rendered
	gc(0)
	t.add(benchRow{
		Op: "run --stage1-name=fly /bin/true", Goal: 3, Rounds: 15,
		Orbit:   benchOp{"orbit", func(int) { e.mustRun(fly...) }},
		Ref:     benchOp{"unshare -mpf chroot", func(int) { benchRun(t.t, "unshare", "--mount", "--pid", "--fork", "chroot", rootfs, "/bin/true") }},
		Peers:   speedBenchPeers(t, rootfs),
		Between: gc,
	})
	if !nspawnAvailable() {
		return
	}
	nspawn := []string{"run", "--insecure-options=image", id}
	e.mustRun(nspawn...)
	gc(0)
	t.add(benchRow{
		Op: "run (nspawn) /bin/true", Goal: 1.10, Rounds: 11,
		Orbit: benchOp{"orbit", func(int) { e.mustRun(nspawn...) }},
		Ref: benchOp{"systemd-nspawn", func(int) {
			benchRun(t.t, "systemd-nspawn", "-q", "--register=no", "--keep-unit", "-D", rootfs, "/bin/true")
		}},
		Between: gc,
	})
}

// speedBenchImage writes the fetch and render rows' image: about 206 MB of
// tar (48 MiB of random bytes, as in binaries, and 150 MiB of log-like
// text) that gzip makes about 57 MB of. It returns the gzip ACI, the tar
// and the image ID.
func speedBenchImage(t *benchTable) (string, string) {
	t.t.Helper()
	dir := t.t.TempDir()
	gzPath, tarPath := filepath.Join(dir, "big.aci"), filepath.Join(dir, "big.tar")
	tf, err := os.Create(tarPath)
	if err != nil {
		t.t.Fatal(err)
	}
	bw := bufio.NewWriterSize(tf, 1<<20)
	tw := tar.NewWriter(bw)
	manifest, _ := json.Marshal(imageManifest("example.com/bench-big", "/bin/true"))
	now := time.Now()
	entry := func(name string, mode int64, typ byte, size int64, body io.Reader) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Typeflag: typ, Size: size, ModTime: now}); err != nil {
			t.t.Fatal(err)
		}
		if body != nil {
			if _, err := io.CopyN(tw, body, size); err != nil {
				t.t.Fatal(err)
			}
		}
	}
	entry("manifest", 0o644, tar.TypeReg, int64(len(manifest)), bytes.NewReader(manifest))
	entry("rootfs", 0o755, tar.TypeDir, 0, nil)
	entry("rootfs/data", 0o755, tar.TypeDir, 0, nil)
	// Many files as well as big ones, as in a real root filesystem.
	for i := 0; i < 48; i++ {
		entry(fmt.Sprintf("rootfs/data/random-%02d.bin", i), 0o644, tar.TypeReg, 1<<20, rand.Reader)
	}
	text := &benchText{}
	for i := 0; i < 150; i++ {
		entry(fmt.Sprintf("rootfs/data/log-%03d.txt", i), 0o644, tar.TypeReg, 1<<20, text)
	}
	if err := tw.Close(); err != nil {
		t.t.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		t.t.Fatal(err)
	}
	tf.Close()
	benchShell(t.t, "gzip -1 -c "+tarPath+" >"+gzPath)
	return gzPath, tarPath
}

// speedBenchFetchRender adds the fetch and render rows and orbit's peak RSS
// while fetching.
func speedBenchFetchRender(t *benchTable) {
	aci, tarball := speedBenchImage(t)
	e := newEnv(t.t)
	id := strings.TrimSpace(e.mustRun("fetch", "--full", "--insecure-options=image", aci).Stdout)
	e.mustRun("image", "rm", id)
	scratch := filepath.Join(e.Dir, "bench-scratch") // the store's filesystem
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		t.t.Fatal(err)
	}
	var peak int64
	t.add(benchRow{
		Op: "fetch 57 MB gzip ACI (206 MB tar)", Goal: 1.0, Rounds: 5,
		Orbit: benchOp{"orbit", func(int) {
			cmd := e.command("fetch", "--insecure-options=image", aci)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.t.Fatalf("fetch: %v\n%s", err, out)
			}
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss > peak {
				peak = ru.Maxrss
			}
		}},
		Ref: benchOp{"gunzip|tee|sha512sum", func(int) {
			benchShell(t.t, "gunzip -c "+aci+" | tee "+scratch+"/blob | sha512sum >/dev/null")
		}},
		Between: func(int) {
			e.mustRun("image", "rm", id)
			os.Remove(filepath.Join(scratch, "blob"))
		},
	})
	t.value("orbit peak RSS, fetch of the 206 MB image", "MB", float64(peak)/1024, 64, "ru_maxrss of orbit fetch")
	e.mustRun("fetch", "--insecure-options=image", aci)
	out := func(i int, who string) string { return filepath.Join(scratch, fmt.Sprintf("%s-%d", who, i)) }
	t.add(benchRow{
		Op: "image render (206 MB tar)", Goal: 1.10, Rounds: 5,
		Orbit: benchOp{"orbit", func(i int) { e.mustRun("image", "render", id, out(i, "orbit")) }},
		Ref: benchOp{"tar -xf", func(i int) {
			if err := os.Mkdir(out(i, "tar"), 0o755); err != nil {
				t.t.Fatal(err)
			}
			benchRun(t.t, "tar", "-xf", tarball, "-C", out(i, "tar"))
		}},
		Between: func(i int) {
			os.RemoveAll(out(i, "orbit"))
			os.RemoveAll(out(i, "tar"))
		},
	})
}

// speedBenchPopulate gives e n prepared pods (copies of one that orbit
// prepared, under new UUIDs: the cost of preparing a thousand pods is not
// what is measured) and n images in all (tiny ones imported through the
// store package besides the one given).
func speedBenchPopulate(t *benchTable, e *env, id string, n int) string {
	t.t.Helper()
	uuid := strings.TrimSpace(e.mustRun("prepare", "--insecure-options=image", "--stage1-name=fly", id).Stdout)
	src := filepath.Join(e.Dir, "pods", "prepared", uuid)
	for i := 1; i < n; i++ {
		dst := filepath.Join(e.Dir, "pods", "prepared", fmt.Sprintf("%08x-0000-4000-8000-%012x", i, time.Now().UnixNano()&0xffffffffffff))
		if err := speedCopyTree(src, dst); err != nil {
			t.t.Fatal(err)
		}
	}
	s, err := store.Open(filepath.Join(e.Dir, "cas"))
	if err != nil {
		t.t.Fatal(err)
	}
	images := len(strings.Split(strings.TrimSpace(e.mustRun("image", "list", "--no-legend").Stdout), "\n"))
	for i := images; i < n; i++ {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		m, _ := json.Marshal(imageManifest(fmt.Sprintf("example.com/bench-scale-%d", i), "/bin/true"))
		tw.WriteHeader(&tar.Header{Name: "manifest", Mode: 0o644, Size: int64(len(m)), Typeflag: tar.TypeReg})
		tw.Write(m)
		tw.WriteHeader(&tar.Header{Name: "rootfs", Mode: 0o755, Typeflag: tar.TypeDir})
		tw.Close()
		if _, err := s.Import(&buf, store.ImportOptions{}); err != nil {
			t.t.Fatal(err)
		}
	}
	return uuid
}

// speedCopyTree copies a pod directory (directories and small regular
// files) to dst.
func speedCopyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.Mkdir(to, info.Mode().Perm())
		case d.Type().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(to, data, info.Mode().Perm())
		case d.Type()&os.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		}
		return nil
	})
}

// speedBenchScale adds the scale rows: list, image list, status, gc and a
// run with 1,000 pods and 1,000 images against the same with 10.
func speedBenchScale(t *benchTable) {
	var envs [2]*env
	var uuids, ids [2]string
	for k, n := range []int{10, 1000} {
		e, id, _ := speedBenchRootfs(t, "example.com/bench-scale")
		e.mustRun("run", "--insecure-options=image", "--stage1-name=fly", id) // stage1 imported, trees rendered
		e.mustRun("gc", "--grace-period=0s", "--expire-prepared=0s")
		envs[k], ids[k], uuids[k] = e, id, speedBenchPopulate(t, e, id, n)
	}
	for _, op := range []struct {
		name string
		args func(k int) []string
	}{
		{"list", func(int) []string { return []string{"list"} }},
		{"image list", func(int) []string { return []string{"image", "list"} }},
		{"status", func(k int) []string { return []string{"status", uuids[k]} }},
		{"gc (nothing to collect)", func(int) []string { return []string{"gc"} }},
	} {
		t.add(benchRow{
			Op: op.name + " with 1,000 pods and images", Goal: 2, Rounds: 9,
			Orbit: benchOp{"orbit", func(int) { envs[1].mustRun(op.args(1)...) }},
			Ref:   benchOp{"same with 10", func(int) { envs[0].mustRun(op.args(0)...) }},
		})
	}
	run := func(k int) []string {
		return []string{"run", "--insecure-options=image", "--stage1-name=fly", ids[k]}
	}
	t.add(benchRow{
		Op: "run --stage1-name=fly with 1,000 pods and images", Goal: 2, Rounds: 9,
		Orbit: benchOp{"orbit", func(int) { envs[1].mustRun(run(1)...) }},
		Ref:   benchOp{"same with 10", func(int) { envs[0].mustRun(run(0)...) }},
		Between: func(int) {
			// Exited pods only: the prepared ones stay.
			envs[0].mustRun("gc", "--grace-period=0s")
			envs[1].mustRun("gc", "--grace-period=0s")
		},
	})
}

// speedBenchMemory adds the supervisor's idle RSS with two apps.
func speedBenchMemory(t *benchTable) {
	if !nspawnAvailable() {
		return
	}
	e, id, _ := speedBenchRootfs(t, "example.com/bench-sleep")
	cmd := e.command("run", "--insecure-options=image", id, "--name=one", "--exec=/bin/sleep", "--", "60", "---", id, "--name=two", "--exec=/bin/sleep", "--", "60")
	if err := cmd.Start(); err != nil {
		t.t.Fatal(err)
	}
	defer func() {
		// stop takes pod UUIDs (it has no --all): stop each running pod,
		// so the deferred Wait does not wait out the apps' sleep.
		dirs, _ := filepath.Glob(filepath.Join(e.Dir, "pods", "run", "*"))
		for _, d := range dirs {
			e.run("stop", "--force", filepath.Base(d))
		}
		cmd.Wait()
	}()
	var status string
	deadline := time.Now().Add(60 * time.Second)
	for status == "" && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		pids, _ := filepath.Glob(filepath.Join(e.Dir, "pods", "run", "*", "pid"))
		apps, _ := filepath.Glob(filepath.Join(e.Dir, "pods", "run", "*", "stage1", "rootfs", "rkt", "status", "*.pid"))
		if len(pids) == 0 || len(apps) < 2 {
			continue
		}
		b, err := os.ReadFile(pids[0])
		if err != nil || len(b) == 0 {
			continue
		}
		// Both apps started: the supervisor is idle once it settled.
		time.Sleep(5 * time.Second)
		data, err := os.ReadFile("/proc/" + strings.TrimSpace(string(b)) + "/status")
		if err != nil {
			t.t.Fatal(err)
		}
		status = string(data)
	}
	field := func(name string) float64 {
		for _, line := range strings.Split(status, "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == name+":" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				return kb / 1024
			}
		}
		return 0
	}
	rss := field("VmRSS")
	if rss == 0 {
		t.t.Fatal("the supervisor's idle RSS could not be read")
	}
	t.value("pod supervisor idle RSS, two apps", "MB", rss, 3,
		fmt.Sprintf("VmRSS of the nspawn pod's PID 1: %.1f MB anonymous, %.1f MB of its binary", field("RssAnon"), field("RssFile")))
}
