package tests

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests in this file run orbit the way a systemd unit does, inside a
// booted Debian 12 system: systemd-nspawn -b on a root filesystem made once
// by tests/testdata/systemd/mkroot.sh (debootstrap, cached outside the
// tree), with the unified cgroup hierarchy only, as current distributions
// boot. The machine is not registered on the host (which has no bus); the
// tests drive systemctl, machinectl and journalctl in it by entering its
// namespaces (nsenter).

// systemdMachine is one booted system.
type systemdMachine struct {
	t      testing.TB
	leader int       // the machine's PID 1 (systemd), as the host sees it
	nspawn *exec.Cmd // systemd-nspawn -b
	log    string    // the console's output
	images string    // host folder shown read-only at /srv/orbit-images
}

// systemdRoot returns the cached Debian root, building it if need be.
func systemdRoot(t testing.TB) string {
	t.Helper()
	requireTool(t, "debootstrap", "debootstrap")
	requireTool(t, "systemd-nspawn", "systemd-container")
	requireTool(t, "nsenter", "util-linux")
	cmd := exec.Command("tests/testdata/systemd/mkroot.sh")
	if wd, _ := os.Getwd(); filepath.Base(wd) == "tests" {
		cmd = exec.Command("testdata/systemd/mkroot.sh")
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("making the Debian root the systemd tests boot (tests/testdata/systemd/mkroot.sh): %v", err)
	}
	return strings.TrimSpace(out.String())
}

// systemdBoot boots a fresh system (its root an overlay of the cached one
// on a tmpfs, so nothing a test does lasts) with orbit at /usr/bin/orbit,
// orbit's store on a folder of the host (overlayfs cannot stack its
// layers on an overlay root), and images, the folder the test puts its
// images in, at /srv/orbit-images. The machine is powered off when the test
// ends.
func systemdBoot(t testing.TB) *systemdMachine {
	t.Helper()
	root := systemdRoot(t)
	tmp := t.TempDir()
	m := &systemdMachine{t: t, images: filepath.Join(tmp, "images"), log: filepath.Join(tmp, "console.log")}
	store := filepath.Join(tmp, "store")
	for _, d := range []string{m.images, store} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	logf, err := os.Create(m.log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	name := fmt.Sprintf("orbit-systemd-test-%d", time.Now().UnixNano()%1e9)
	m.nspawn = exec.Command("systemd-nspawn", "--quiet", "--boot",
		"--directory="+root, "--volatile=overlay",
		"--machine="+name, "--register=no", "--keep-unit",
		"--capability=all", "--console=pipe", "--private-network",
		"--bind="+store+":/var/lib/orbit",
		"--bind-ro="+binary+":/usr/bin/orbit",
		"--bind-ro="+m.images+":/srv/orbit-images",
	)
	// The unified hierarchy only; nspawn's own syscall filter would deny
	// the nested pods what they need.
	m.nspawn.Env = append(os.Environ(), "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1", "SYSTEMD_SECCOMP=0")
	m.nspawn.Stdout, m.nspawn.Stderr = logf, logf
	m.nspawn.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := m.nspawn.Start(); err != nil {
		t.Fatalf("booting %s: %v", root, err)
	}
	t.Cleanup(m.powerOff)
	deadline := time.Now().Add(60 * time.Second)
	for m.leader == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the booted system's PID 1 did not appear; console:\n%s", m.console())
		}
		m.leader = systemdFindInit(m.nspawn.Process.Pid)
		time.Sleep(50 * time.Millisecond)
	}
	// "degraded" is fine: a container lacks what some units want.
	for {
		r := m.sh("systemctl is-system-running --wait")
		state := strings.TrimSpace(r.Stdout)
		if state == "running" || state == "degraded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the booted system did not come up (%s); console:\n%s", r, m.console())
		}
		time.Sleep(200 * time.Millisecond)
	}
	return m
}

// systemdFindInit returns the PID of the first descendant of pid named
// systemd, or 0.
func systemdFindInit(pid int) int {
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p)); p != pid && strings.TrimSpace(string(comm)) == "systemd" {
			return p
		}
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", p))
		for _, tf := range tasks {
			b, _ := os.ReadFile(tf)
			for _, f := range strings.Fields(string(b)) {
				if c, err := strconv.Atoi(f); err == nil {
					queue = append(queue, c)
				}
			}
		}
	}
	return 0
}

func (m *systemdMachine) console() string {
	b, _ := os.ReadFile(m.log)
	return string(b)
}

// powerOff halts the machine (nspawn turns SIGTERM into an orderly
// shutdown) and kills it if it takes too long.
func (m *systemdMachine) powerOff() {
	if m.nspawn.ProcessState != nil {
		return
	}
	m.nspawn.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { m.nspawn.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		syscall.Kill(-m.nspawn.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// sh runs a shell command line inside the machine, in all its namespaces,
// with a clean environment.
func (m *systemdMachine) sh(script string) result {
	m.t.Helper()
	cmd := exec.Command("nsenter", "--target="+strconv.Itoa(m.leader), "--all", "--",
		"/usr/bin/env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
		"/bin/sh", "-c", script)
	return runCommand(m.t, cmd)
}

// mustSh is sh that fails the test unless the command succeeds.
func (m *systemdMachine) mustSh(script string) string {
	m.t.Helper()
	r := m.sh(script)
	if r.Code != 0 {
		m.t.Fatalf("in the booted system: %s: %s", script, r)
	}
	return r.Stdout
}

// writeFile writes a file inside the machine, through its PID 1's root.
func (m *systemdMachine) writeFile(path, content string) {
	m.t.Helper()
	writeFile(m.t, filepath.Join(fmt.Sprintf("/proc/%d/root", m.leader), path), content)
}

// install puts a unit file of Documentation/examples/systemd into the
// machine's /etc/systemd/system and reloads systemd.
func (m *systemdMachine) install(names ...string) {
	m.t.Helper()
	for _, name := range names {
		data, err := os.ReadFile(systemdExample(name))
		if err != nil {
			m.t.Fatal(err)
		}
		m.writeFile("/etc/systemd/system/"+name, string(data))
	}
	m.mustSh("systemctl daemon-reload")
}

// systemdExample is the path of a unit file the documentation shows.
func systemdExample(name string) string {
	if wd, _ := os.Getwd(); filepath.Base(wd) == "tests" {
		return filepath.Join("..", "Documentation", "examples", "systemd", name)
	}
	return filepath.Join("Documentation", "examples", "systemd", name)
}

// addImage writes an ACI into the machine's /srv/orbit-images and fetches
// it into the machine's store, so units can run it by name.
func (m *systemdMachine) addImage(file, rootfs string, manifest map[string]any) {
	m.t.Helper()
	writeACI(m.t, filepath.Join(m.images, file), rootfs, manifest)
	m.mustSh("orbit fetch --insecure-options=image /srv/orbit-images/" + file)
}

// waitFor polls a shell command in the machine until its output contains
// want.
func (m *systemdMachine) waitFor(script, want string, timeout time.Duration) string {
	m.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := m.sh(script)
		if strings.Contains(r.Stdout, want) {
			return r.Stdout
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("in the booted system, %q never showed %q; last: %s", script, want, r)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSystemdBoots checks the infrastructure itself: the system boots with
// the unified hierarchy only, and orbit runs in it.
func TestSystemdBoots(t *testing.T) {
	t.Parallel()
	m := systemdBoot(t)
	if out := m.mustSh("stat -f -c %T /sys/fs/cgroup"); strings.TrimSpace(out) != "cgroup2fs" {
		t.Fatalf("/sys/fs/cgroup is %q in the booted system, want cgroup2fs", out)
	}
	if out := m.mustSh("orbit version"); out == "" {
		t.Fatal("orbit version printed nothing")
	}
}

// systemdHello puts example.com/hello:1.0 (prints a line, sleeps for ever
// unless given a command) into the machine's store.
func systemdHello(m *systemdMachine, name string, exec ...string) {
	m.t.Helper()
	if len(exec) == 0 {
		exec = []string{"/bin/sh", "-c", "echo hello from the pod; exec sleep 1000"}
	}
	m.addImage(strings.NewReplacer("/", "_", ":", "_").Replace(name)+".aci", busyboxRootfs(m.t), systemdManifest(name, exec...))
}

// systemdManifest is imageManifest with the version label a name:version
// reference needs.
func systemdManifest(name string, exec ...string) map[string]any {
	base, version, _ := strings.Cut(name, ":")
	im := imageManifest(base, exec...)
	if version != "" {
		im["labels"] = append(im["labels"].([]map[string]string), map[string]string{"name": "version", "value": version})
	}
	return im
}

// TestSystemdUnifiedCgroups: on a cgroup2-only system a pod's cgroups are
// made below the unit's delegated cgroup (the pod is not left without
// cgroups: nspawn is told the layout), and a limit whose controller the
// unit's cgroup does not offer fails before the pod starts, with one line
// naming the cgroup and the controller.
func TestSystemdUnifiedCgroups(t *testing.T) {
	t.Parallel()
	m := systemdBoot(t)
	systemdHello(m, "example.com/hello:1.0")
	m.install("hello.service", "limited.service")

	m.mustSh("systemctl start hello.service")
	m.waitFor("journalctl -u hello.service --no-pager -o cat", "hello from the pod", 30*time.Second)
	uuid := strings.TrimSpace(m.mustSh("cat /run/hello.uuid"))
	// The app's own cgroup is below the unit's, and the pod left nothing
	// outside it.
	cg := m.waitFor("cat /sys/fs/cgroup/system.slice/hello.service/orbit/"+uuid+"/payload/cgroup.procs /sys/fs/cgroup/system.slice/hello.service/orbit/"+uuid+"/*/cgroup.type", "domain", 10*time.Second)
	if out := m.sh("ls /sys/fs/cgroup/orbit /sys/fs/cgroup/system.slice/orbit 2>&1"); !strings.Contains(out.Stdout+out.Stderr, "No such file") {
		t.Errorf("the pod made cgroups outside its unit's: %s", out)
	}
	if out := m.sh("journalctl -u hello.service --no-pager -o cat"); strings.Contains(out.Stdout, "without cgroups") {
		t.Errorf("the pod ran without cgroups:\n%s\n%s", out.Stdout, cg)
	}
	m.mustSh("systemctl stop hello.service")

	// This machine's cgroup2 tree offers what its host's offers; a limit
	// whose controller the unit cannot delegate fails with the reason.
	offered := strings.Fields(m.mustSh("cat /sys/fs/cgroup/cgroup.controllers"))
	if slices.Contains(offered, "memory") && slices.Contains(offered, "cpu") {
		m.mustSh("systemctl start limited.service")
		m.waitFor("cat /sys/fs/cgroup/system.slice/limited.service/orbit/*/hello/memory.max", "67108864", 30*time.Second)
		m.waitFor("cat /sys/fs/cgroup/system.slice/limited.service/orbit/*/hello/cpu.max", "50000 100000", 10*time.Second)
		return
	}
	m.sh("systemctl start limited.service")
	// The journal may have the line before systemd records the exit.
	m.waitFor("journalctl -u limited.service --no-pager -o cat", "does not delegate", 30*time.Second)
	m.waitFor("systemctl show -p ExecMainStatus limited.service", "ExecMainStatus=254", 30*time.Second)
	out := m.mustSh("systemctl show -p ExecMainStatus limited.service; journalctl -u limited.service --no-pager -o cat")
	if !strings.Contains(out, "ExecMainStatus=254") || !strings.Contains(out, "/system.slice/limited.service does not delegate the memory controller") {
		t.Errorf("a missing controller: want exit 254 and the one-line reason, got:\n%s", out)
	}
	// A CPU limit alone names the cpu controller, from a transient unit
	// as from a unit file.
	r := m.sh("systemd-run --quiet --wait --pipe --collect -p Delegate=yes /usr/bin/orbit run --insecure-options=image --net=host example.com/hello:1.0 --cpu=500m")
	oneLine := false
	for _, line := range strings.Split(r.Stderr, "\n") {
		oneLine = oneLine || strings.Contains(line, "/system.slice/run-") && strings.Contains(line, "does not delegate the cpu controller") && strings.Contains(line, "Delegate=yes")
	}
	if r.Code != 254 || !oneLine {
		t.Errorf("a CPU limit without the cpu controller: want exit 254 and one line, got %s", r)
	}
	t.Logf("memory and cpu limits were not tried: the kernel gives this system's cgroup2 tree only %q (the host binds the rest to cgroup v1)", offered)
}

// TestSystemdUnit runs the documented units: start makes the pod (its
// processes in the unit's cgroup, its output in the unit's journal), stop
// runs the post-stop handler and records the pod exited, a failing app's
// status is the unit's and Restart=on-failure starts a new pod, and
// Type=notify makes the unit active once the pod reports ready.
func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	m := systemdBoot(t)
	im := systemdManifest("example.com/hello:1.0", "/bin/sh", "-c", "echo hello from the pod; exec sleep 1000")
	im["app"].(map[string]any)["eventHandlers"] = []map[string]any{{"name": "post-stop", "exec": []string{"/bin/echo", "post-stop ran"}}}
	m.addImage("hello.aci", busyboxRootfs(t), im)
	m.install("hello.service", "hello-notify.service")

	m.mustSh("systemctl start hello.service")
	m.waitFor("journalctl -u hello.service --no-pager -o cat", "hello from the pod", 30*time.Second)
	uuid := strings.TrimSpace(m.mustSh("cat /run/hello.uuid"))
	if out := m.waitFor("systemctl status hello.service --no-pager", "sleep 1000", 10*time.Second); !strings.Contains(out, "active (running)") || !strings.Contains(out, uuid) {
		t.Errorf("systemctl status does not show the pod's app in the unit:\n%s", out)
	}
	m.mustSh("systemctl stop hello.service")
	out := m.mustSh("journalctl -u hello.service --no-pager -o cat; systemctl show -p Result -p ExecMainStatus hello.service")
	if !strings.Contains(out, "post-stop ran") || !strings.Contains(out, "Result=success") {
		t.Errorf("systemctl stop: want the post-stop handler's line and a clean end, got:\n%s", out)
	}
	if list := m.mustSh("orbit list --no-legend"); !strings.Contains(list, uuid[:8]) || !strings.Contains(list, "exited") {
		t.Errorf("the stopped pod is not recorded exited:\n%s", list)
	}

	// A failing app: its status is the unit's, and the unit restarts it
	// as a new pod.
	m.addImage("hello-fail.aci", busyboxRootfs(t), systemdManifest("example.com/hello:1.0", "/bin/sh", "-c", "echo failing; exit 3"))
	m.sh("systemctl start hello.service")
	out = m.waitFor("systemctl show -p ExecMainStatus -p NRestarts hello.service", "ExecMainStatus=3", 60*time.Second)
	m.waitFor("systemctl show -p NRestarts hello.service", "NRestarts=2", 60*time.Second)
	m.mustSh("systemctl stop hello.service")
	if n := strings.Count(m.mustSh("journalctl -u hello.service --no-pager -o cat"), "failing"); n < 2 {
		t.Errorf("Restart=on-failure: the failing app ran %d times, want a new pod each restart (%s)", n, out)
	}

	// Type=notify: start returns once the pod reported ready.
	m.addImage("hello-notify.aci", busyboxRootfs(t), systemdManifest("example.com/hello-notify:1.0", "/bin/sh", "-c", "echo notify pod up; exec sleep 1000"))
	m.mustSh("timeout 60 systemctl start hello-notify.service")
	if out := m.mustSh("systemctl is-active hello-notify.service"); strings.TrimSpace(out) != "active" {
		t.Errorf("the notify unit is %q after start, want active", out)
	}
	m.mustSh("systemctl stop hello-notify.service")
}

// TestSystemdDocumentedUnits keeps Documentation/systemd.md showing the
// unit files the tests run, byte for byte.
func TestSystemdDocumentedUnits(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile(filepath.Join(filepath.Dir(systemdExample("x")), "..", "..", "systemd.md"))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(filepath.Dir(systemdExample("x")), "*"))
	if len(files) == 0 {
		t.Fatal("no example unit files")
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(doc, append([]byte("```ini\n"), data...)) {
			t.Errorf("Documentation/systemd.md does not show %s as it is", f)
		}
	}
}

// TestSystemdSocketActivation: a connection to the documented .socket unit
// starts echo.service, whose pod's app gets the listening socket and
// answers on it.
func TestSystemdSocketActivation(t *testing.T) {
	t.Parallel()
	m := systemdBoot(t)
	root := busyboxRootfs(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "main.go"), sockApp)
	writeFile(t, filepath.Join(src, "go.mod"), "module sockapp\n\ngo 1.21\n")
	build := exec.Command("go", "build", "-o", filepath.Join(root, "bin", "sockapp"), ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the test app: %v\n%s", err, out)
	}
	im := systemdManifest("example.com/echo:1.0", "/bin/sockapp")
	im["app"].(map[string]any)["ports"] = []map[string]any{{"name": "http", "protocol": "tcp", "port": 8080, "socketActivated": true}}
	m.addImage("echo.aci", root, im)
	m.install("echo.socket", "echo.service")
	m.mustSh("systemctl start echo.socket")
	if out := m.sh("systemctl is-active echo.service"); strings.TrimSpace(out.Stdout) == "active" {
		t.Fatal("echo.service started before any connection")
	}
	out := m.mustSh(`timeout 60 bash -c 'exec 3<>/dev/tcp/127.0.0.1/8080; cat <&3'`)
	if !strings.Contains(out, "hello from echo") {
		t.Fatalf("the socket-activated pod answered %q", out)
	}
	m.waitFor("systemctl show -p ExecMainStatus -p ActiveState echo.service", "ExecMainStatus=0", 30*time.Second)
}

// TestSystemdJournal: a multi-app pod's lines are in its unit's journal,
// each under its app's name as syslog identifier.
func TestSystemdJournal(t *testing.T) {
	t.Parallel()
	m := systemdBoot(t)
	for _, app := range []string{"ping", "pong"} {
		systemdHello(m, "example.com/"+app+":1.0", "/bin/sh", "-c", "echo line from "+app+"; echo err from "+app+" >&2; exec sleep 1000")
	}
	m.install("pair.service")
	m.mustSh("systemctl start pair.service")
	for _, app := range []string{"ping", "pong"} {
		out := m.waitFor("journalctl -u pair.service -t "+app+" --no-pager -o cat", "err from "+app, 30*time.Second)
		if !strings.Contains(out, "line from "+app) {
			t.Errorf("journalctl -u pair.service -t %s:\n%s", app, out)
		}
	}
	if out := m.mustSh("journalctl -u pair.service -t ping -p err --no-pager -o cat"); !strings.Contains(out, "err from ping") || strings.Contains(out, "line from ping") {
		t.Errorf("stderr lines are not logged as errors, or stdout lines are:\n%s", out)
	}
	m.mustSh("systemctl stop pair.service")
}

// TestSystemdMachined: with a system bus and machined, the pod is a
// machine (orbit-UUID) showing its processes; machinectl terminate stops
// it in order, and it is unregistered when it ends.
func TestSystemdMachined(t *testing.T) {
	t.Parallel()
	m := systemdBoot(t)
	im := systemdManifest("example.com/hello:1.0", "/bin/sh", "-c", "echo hello from the pod; exec sleep 1000")
	im["app"].(map[string]any)["eventHandlers"] = []map[string]any{{"name": "post-stop", "exec": []string{"/bin/echo", "post-stop ran"}}}
	m.addImage("hello.aci", busyboxRootfs(t), im)
	m.install("hello.service")
	m.mustSh("systemctl start hello.service")
	m.waitFor("journalctl -u hello.service --no-pager -o cat", "hello from the pod", 30*time.Second)
	uuid := strings.TrimSpace(m.mustSh("cat /run/hello.uuid"))
	machine := "orbit-" + uuid
	m.waitFor("machinectl list --no-legend", machine, 10*time.Second)
	if out := m.waitFor("machinectl status --no-pager "+machine, "sleep 1000", 10*time.Second); !strings.Contains(out, "Unit: hello.service") {
		t.Errorf("machinectl status does not show the pod in its unit:\n%s", out)
	}
	m.mustSh("machinectl terminate " + machine)
	m.waitFor("systemctl is-active hello.service", "inactive", 30*time.Second)
	out := m.mustSh("journalctl -u hello.service --no-pager -o cat; systemctl show -p Result hello.service; machinectl list --no-legend")
	if !strings.Contains(out, "post-stop ran") || !strings.Contains(out, "Result=success") || strings.Contains(out, machine) {
		t.Errorf("machinectl terminate: want the post-stop handler, a clean end and the machine gone:\n%s", out)
	}
}

// TestSystemdNoMachined: with a bus but no machined the pod runs
// unregistered instead of failing.
func TestSystemdNoMachined(t *testing.T) {
	t.Parallel()
	m := systemdBoot(t)
	systemdHello(m, "example.com/hello:1.0")
	m.install("hello.service")
	m.mustSh("systemctl stop systemd-machined; rm -f /usr/share/dbus-1/system-services/org.freedesktop.machine1.service /lib/systemd/system/systemd-machined.service /run/systemd/machines -r; systemctl daemon-reload; systemctl reload dbus || true")
	m.mustSh("systemctl start hello.service")
	m.waitFor("journalctl -u hello.service --no-pager -o cat", "hello from the pod", 30*time.Second)
	if out := m.mustSh("systemctl is-active hello.service"); strings.TrimSpace(out) != "active" {
		t.Fatalf("without machined the unit is %q", out)
	}
	m.mustSh("systemctl stop hello.service")
}

// TestSystemdPrivateUsers: the documented private.service runs its pod in
// a user namespace on the cgroup2-only system: the app is root inside and
// a high user ID outside, its cgroups below the unit's are handed to the
// pod's root, enter joins it, and stop ends the unit cleanly.
func TestSystemdPrivateUsers(t *testing.T) {
	t.Parallel()
	m := systemdBoot(t)
	systemdHello(m, "example.com/hello:1.0", "/bin/sh", "-c", "echo hello from the pod as $(id -u); exec sleep 7002")
	m.install("private.service")
	m.mustSh("systemctl start private.service")
	m.waitFor("journalctl -u private.service --no-pager -o cat", "hello from the pod as 0", 30*time.Second)
	uuid := strings.TrimSpace(m.mustSh("cat /run/private.uuid"))
	pid := usernsFindProcess(t, "sleep 7002", 10*time.Second)
	uid, _ := usernsIDs(t, pid)
	if uid < 0x80000 {
		t.Errorf("the app runs as host user %d, want one of a pod's range (from 524288)", uid)
	}
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The host sees the machine's cgroup2 tree below its own (at
	// /sys/fs/cgroup/unified on a hybrid host).
	unified := "/sys/fs/cgroup"
	var fs syscall.Statfs_t
	if syscall.Statfs("/sys/fs/cgroup/unified", &fs) == nil && fs.Type == 0x63677270 {
		unified = "/sys/fs/cgroup/unified"
	}
	var appCg string
	for _, line := range strings.Split(string(cg), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			appCg = p
		}
	}
	if !strings.Contains(appCg, "/system.slice/private.service/orbit/"+uuid+"/") {
		t.Fatalf("the app's cgroup %q is not below its unit's", appCg)
	}
	// The app's cgroup is the pod root's.
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(unified, appCg, "cgroup.procs"), &st); err != nil || int(st.Uid) != uid {
		t.Errorf("the app's cgroup.procs is owned by %d (%v), want the pod's root %d", st.Uid, err, uid)
	}
	if out := m.mustSh("orbit enter " + uuid + " /bin/sh -c 'id -u; cat /proc/self/uid_map'"); !strings.HasPrefix(out, "0\n") || !strings.Contains(out, strconv.Itoa(uid)) {
		t.Errorf("enter: want root in the pod's user namespace of range %d:\n%s", uid, out)
	}
	m.mustSh("systemctl stop private.service")
	if out := m.mustSh("systemctl show -p Result private.service; orbit list --no-legend"); !strings.Contains(out, "Result=success") || !strings.Contains(out, "exited") {
		t.Errorf("systemctl stop: want a clean end and the pod exited:\n%s", out)
	}
	m.mustSh("orbit gc --grace-period=0s")
	if out := m.mustSh("orbit list --no-legend"); strings.Contains(out, uuid[:8]) {
		t.Errorf("gc left the pod:\n%s", out)
	}
}
