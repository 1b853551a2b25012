package stage2

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMain lets the test binary act as the launcher: Command re-executes
// /proc/self/exe, which under `go test` is this binary.
func TestMain(m *testing.M) {
	if filepath.Base(filepath.Dir(os.Args[0]))+"/"+filepath.Base(os.Args[0]) == LauncherName {
		os.Exit(Main(os.Args[1:]))
	}
	os.Exit(m.Run())
}

const busybox = "/usr/bin/busybox"

// busyboxRoot builds a root filesystem holding busybox-static, a passwd and
// a group file, and returns its path.
func busyboxRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("launching apps needs root")
	}
	if _, err := os.Stat(busybox); err != nil {
		t.Skip("busybox-static is not installed")
	}
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"bin", "etc", "tmp", "work", "home/alice", "run", "var"} {
		mustMkdir(t, filepath.Join(root, d))
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(root, "bin", "busybox"), string(data), 0o755)
	for _, applet := range []string{"sh", "id", "cat", "env", "pwd", "chown", "mkdir", "ls",
		"touch", "grep", "hostname", "echo", "true", "stat", "mount"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite(t, filepath.Join(root, "etc", "passwd"),
		"root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000:Alice:/home/alice:/bin/sh\n", 0o644)
	mustWrite(t, filepath.Join(root, "etc", "group"),
		"root:x:0:\nalice:x:1000:\nstaff:x:50:alice\n", 0o644)
	if err := os.Symlink("/run", filepath.Join(root, "var", "run")); err != nil {
		t.Fatal(err)
	}
	return root
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func mustWrite(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// procMount gives the app a /proc.
var procMount = Mount{Source: "proc", Target: "/proc", FSType: "proc", CreateDir: true}

// launch runs app through Command and returns its output and exit status.
func launch(t *testing.T, app App) (stdout, stderr string, code int) {
	t.Helper()
	if app.Name == "" {
		app.Name = "test"
	}
	cmd, err := Command(app)
	if err != nil {
		t.Fatalf("Command: %v", err)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	cmd.ExtraFiles[0].Close()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	default:
		t.Fatalf("run: %v", err)
	}
	return out.String(), withoutCoverageNotes(errOut.String()), code
}

// withoutCoverageNotes drops what a launcher built with -cover (this test
// binary, under `go test -cover`) says about its own coverage data as it
// exits: it runs chrooted in the app's root, where no GOCOVERDIR can be.
func withoutCoverageNotes(stderr string) string {
	if testing.CoverMode() == "" {
		return stderr
	}
	var kept []string
	for _, line := range strings.SplitAfter(stderr, "\n") {
		if !strings.HasPrefix(line, "warning: GOCOVERDIR not set") && !strings.HasPrefix(line, "error: coverage ") {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "")
}

// mustLaunch runs app and fails the test unless it exits 0.
func mustLaunch(t *testing.T, app App) string {
	t.Helper()
	out, errOut, code := launch(t, app)
	if code != 0 {
		t.Fatalf("exit status %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	return out
}

func sh(script string) []string { return []string{"sh", "-c", script} }

func TestLaunchUserAndGroups(t *testing.T) {
	root := busyboxRoot(t)
	out := mustLaunch(t, App{
		Root: root, Exec: sh("id -u; id -g; id -G"),
		User: "alice", Group: "staff", SupplementaryGIDs: []int{7, 1000},
	})
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || lines[0] != "1000" || lines[1] != "50" {
		t.Fatalf("id: %q", out)
	}
	groups := strings.Fields(lines[2])
	for _, want := range []string{"50", "7", "1000"} {
		if !containsString(groups, want) {
			t.Errorf("groups %v lack %s", groups, want)
		}
	}
	if len(groups) != 3 {
		t.Errorf("groups %v, want exactly 50 7 1000", groups)
	}

	// Numbers need no passwd entry; an empty group takes the user's
	// primary one.
	out = mustLaunch(t, App{Root: root, Exec: sh("id -u; id -g"), User: "4242", Group: "4343"})
	if got := strings.Fields(out); strings.Join(got, " ") != "4242 4343" {
		t.Errorf("numeric ids: %q", out)
	}
	out = mustLaunch(t, App{Root: root, Exec: sh("id -g"), User: "alice"})
	if strings.TrimSpace(out) != "1000" {
		t.Errorf("primary group: %q", out)
	}
	// A path names its owner.
	if err := os.Chown(filepath.Join(root, "home", "alice"), 1000, 50); err != nil {
		t.Fatal(err)
	}
	out = mustLaunch(t, App{Root: root, Exec: sh("id -u; id -g"), User: "/home/alice", Group: "/home/alice"})
	if got := strings.Fields(out); strings.Join(got, " ") != "1000 50" {
		t.Errorf("ids from a path: %q", out)
	}
}

func TestLaunchEnvironmentAndWorkingDir(t *testing.T) {
	root := busyboxRoot(t)
	out := mustLaunch(t, App{
		Root: root, Exec: sh("pwd; env"), WorkingDir: "/work",
		Env: []string{"PATH=/bin", "FOO=bar baz"},
	})
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if lines[0] != "/work" {
		t.Errorf("cwd %q, want /work", lines[0])
	}
	if !containsString(lines, "FOO=bar baz") || !containsString(lines, "PATH=/bin") {
		t.Errorf("environment %q lacks the app's variables", lines[1:])
	}
	for _, l := range lines[1:] {
		if strings.HasPrefix(l, "GODEBUG=") {
			t.Errorf("the launcher's own environment leaked: %s", l)
		}
	}
}

func TestLaunchDescriptors(t *testing.T) {
	root := busyboxRoot(t)
	cmd, err := Command(App{Name: "fds", Root: root, Exec: sh("[ -e /proc/$$/fd/3 ] && echo fd 3 open; [ -e /proc/$$/fd/5 ] && echo fd 5 open; cat <&4"), Mounts: []Mount{procMount}, PassFiles: 1})
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString("through fd 4"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	// A descriptor the launcher inherits without being told to pass it on
	// must not reach the app.
	stray, err := os.Open("/")
	if err != nil {
		t.Fatal(err)
	}
	defer stray.Close()
	cmd.ExtraFiles = append(cmd.ExtraFiles, r, stray)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	r.Close()
	// The spec's descriptor 3 is closed; the caller's extra file is 4; the
	// stray one (5) is gone.
	if out.String() != "through fd 4" {
		t.Errorf("the app's descriptors: %q", out.String())
	}
}

func TestLaunchResetsIgnoredSignals(t *testing.T) {
	root := busyboxRoot(t)
	signal.Ignore(syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Reset(syscall.SIGHUP, syscall.SIGUSR1)
	direct, err := exec.Command(busybox, "grep", "SigIgn", "/proc/self/status").Output()
	if err != nil {
		t.Fatal(err)
	}
	if statusField(string(direct), "SigIgn") == "0000000000000000" {
		t.Fatalf("the test could not ignore signals: %s", direct)
	}
	out := mustLaunch(t, App{Root: root, Exec: []string{"grep", "SigIgn", "/proc/self/status"}, Mounts: []Mount{procMount}})
	if got := statusField(out, "SigIgn"); got != "0000000000000000" {
		t.Errorf("the app starts with ignored signals %s", got)
	}
}

func TestLaunchExitStatus(t *testing.T) {
	root := busyboxRoot(t)
	if _, _, code := launch(t, App{Root: root, Exec: sh("exit 7")}); code != 7 {
		t.Errorf("exit status %d, want 7", code)
	}
}

func TestLaunchFailureCodes(t *testing.T) {
	root := busyboxRoot(t)
	mustWrite(t, filepath.Join(root, "bin", "notexec"), "#!/bin/sh\n", 0o644)
	for _, tc := range []struct {
		name string
		app  App
		code int
		msg  string
	}{
		{"missing dir", App{Root: root, Exec: []string{"true"}, WorkingDir: "/nope"}, ExitSetupFailed,
			`stage2: app "test": chdir /nope: no such file or directory`},
		{"not executable", App{Root: root, Exec: []string{"/bin/notexec"}}, ExitNotExecutable,
			`stage2: app "test": exec /bin/notexec: permission denied`},
		{"not executable in PATH", App{Root: root, Exec: []string{"notexec"}}, ExitNotExecutable,
			`stage2: app "test": exec notexec:`},
		{"missing program", App{Root: root, Exec: []string{"nosuch"}}, ExitNotFound,
			`stage2: app "test": exec nosuch: executable file not found in PATH`},
		{"missing path", App{Root: root, Exec: []string{"/bin/nosuch"}}, ExitNotFound,
			`stage2: app "test": exec /bin/nosuch: no such file or directory`},
		{"unknown user", App{Root: root, Exec: []string{"true"}, User: "bob"}, ExitSetupFailed,
			`stage2: app "test": user bob: user "bob" not in /etc/passwd: not found`},
		{"user without group", App{Root: root, Exec: []string{"true"}, User: "4242"}, ExitSetupFailed,
			`stage2: app "test": group:`},
		{"missing mount target", App{Root: root, Exec: []string{"true"},
			Mounts: []Mount{{Source: "tmpfs", Target: "/nope/deeper", FSType: "tmpfs"}}}, ExitSetupFailed,
			`stage2: app "test": mount /nope/deeper: open /nope/deeper: no such file or directory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := launch(t, tc.app)
			if code != tc.code {
				t.Errorf("exit status %d, want %d (stdout %q, stderr %q)", code, tc.code, out, errOut)
			}
			if !strings.HasPrefix(errOut, tc.msg) || strings.Count(errOut, "\n") != 1 {
				t.Errorf("stderr %q, want one line starting %q", errOut, tc.msg)
			}
		})
	}
}

func TestLaunchCapabilities(t *testing.T) {
	root := busyboxRoot(t)
	mustWrite(t, filepath.Join(root, "file"), "x", 0o644)
	noChown, err := CapabilitiesFromSets(nil, []string{"CAP_CHOWN"})
	if err != nil {
		t.Fatal(err)
	}
	_, errOut, code := launch(t, App{Root: root, Exec: []string{"chown", "1:1", "/file"},
		Capabilities: &Capabilities{Retain: noChown}})
	if code == 0 || !strings.Contains(errOut, "Operation not permitted") {
		t.Errorf("chown without CAP_CHOWN: status %d, stderr %q", code, errOut)
	}
	mustLaunch(t, App{Root: root, Exec: []string{"chown", "1:1", "/file"},
		Capabilities: &Capabilities{Retain: DefaultCapabilities()}})

	// The retained set bounds every app; a root app holds it, a non-root
	// app holds nothing (not even through the ambient set), with or
	// without a retained set.
	want := capHex(t, []string{"CAP_NET_BIND_SERVICE", "CAP_KILL"})
	none := capHex(t, nil)
	for _, tc := range []struct {
		user string
		caps *Capabilities
		want map[string]string
	}{
		{"0", &Capabilities{Retain: []string{"CAP_NET_BIND_SERVICE", "CAP_KILL"}},
			map[string]string{"CapInh": want, "CapPrm": want, "CapEff": want, "CapBnd": want, "CapAmb": none}},
		{"alice", &Capabilities{Retain: []string{"CAP_NET_BIND_SERVICE", "CAP_KILL"}},
			map[string]string{"CapInh": none, "CapPrm": none, "CapEff": none, "CapBnd": want, "CapAmb": none}},
		{"alice", nil,
			map[string]string{"CapInh": none, "CapPrm": none, "CapEff": none, "CapAmb": none}},
	} {
		out := mustLaunch(t, App{Root: root, Exec: sh("grep ^Cap /proc/self/status"), User: tc.user,
			Mounts: []Mount{procMount}, Capabilities: tc.caps})
		for set, w := range tc.want {
			if got := statusField(out, set); got != w {
				t.Errorf("user %s, retain %v: %s = %s, want %s", tc.user, tc.caps, set, got, w)
			}
		}
	}
}

// capHex renders capability names as /proc/<pid>/status does.
func capHex(t *testing.T, names []string) string {
	var m uint64
	for _, n := range names {
		c, ok := capabilityNumber(n)
		if !ok {
			t.Fatalf("capability %s", n)
		}
		m |= 1 << uint(c)
	}
	return strings.Repeat("0", 16-len(strconv.FormatUint(m, 16))) + strconv.FormatUint(m, 16)
}

// statusField returns a field of /proc/<pid>/status output.
func statusField(status, name string) string {
	for _, l := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && k == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func TestLaunchSeccomp(t *testing.T) {
	root := busyboxRoot(t)
	_, errOut, code := launch(t, App{Root: root, Exec: []string{"mkdir", "/tmp/x"},
		Seccomp: &Seccomp{Mode: SeccompRemove, Syscalls: []string{"mkdir", "mkdirat"}}})
	if code == 0 || !strings.Contains(errOut, "Operation not permitted") {
		t.Errorf("denied mkdir: status %d, stderr %q", code, errOut)
	}
	_, errOut, code = launch(t, App{Root: root, Exec: []string{"mkdir", "/tmp/y"},
		Seccomp: &Seccomp{Mode: SeccompRemove, Syscalls: []string{"mkdir", "mkdirat"}, Errno: int(unix.ENOSYS)}})
	if code == 0 || !strings.Contains(errOut, "Function not implemented") {
		t.Errorf("denied mkdir with ENOSYS: status %d, stderr %q", code, errOut)
	}
	// The default deny list leaves ordinary work alone and stops mount.
	out, errOut, code := launch(t, App{Root: root, Exec: sh("mkdir /tmp/z && echo made; mount -t tmpfs none /tmp/z"),
		Seccomp: &Seccomp{Mode: SeccompRemove, Syscalls: DefaultSeccompRemoveSet()}})
	if code == 0 || !strings.Contains(out, "made") || !strings.Contains(errOut, "permission denied") {
		t.Errorf("default deny list: status %d, stdout %q, stderr %q", code, out, errOut)
	}
	// An allow list: what is not on it fails with the errno asked for.
	retain := without(DefaultSeccompRetainSet(), "mkdir", "mkdirat")
	out, errOut, code = launch(t, App{Root: root, Exec: sh("echo started; mkdir /tmp/r"),
		Seccomp: &Seccomp{Mode: SeccompRetain, Syscalls: retain, Errno: int(unix.EACCES)}})
	if code == 0 || !strings.Contains(out, "started") || !strings.Contains(errOut, "Permission denied") {
		t.Errorf("allow list: status %d, stdout %q, stderr %q", code, out, errOut)
	}
	// A filter does not imply no_new_privs, and the CAP_SYS_ADMIN the
	// launcher kept to install it does not reach a non-root app.
	out = mustLaunch(t, App{Root: root, Exec: sh("grep -E '^(NoNewPrivs|Cap...):' /proc/self/status"), User: "alice",
		Mounts:  []Mount{procMount},
		Seccomp: &Seccomp{Mode: SeccompRemove, Syscalls: []string{"kexec_load"}}})
	if statusField(out, "NoNewPrivs") != "0" {
		t.Errorf("seccomp without CAP_SYS_ADMIN set no_new_privs: %q", out)
	}
	for _, f := range []string{"CapInh", "CapPrm", "CapEff", "CapAmb"} {
		if statusField(out, f) != "0000000000000000" {
			t.Errorf("a non-root app with a filter holds %s: %q", f, out)
		}
	}
	// A root app whose capabilities lack CAP_SYS_ADMIN does not keep it.
	out = mustLaunch(t, App{Root: root, Exec: sh("grep -E '^(NoNewPrivs|Cap...):' /proc/self/status"),
		Mounts: []Mount{procMount}, Capabilities: &Capabilities{Retain: []string{"CAP_KILL"}},
		Seccomp: &Seccomp{Mode: SeccompRemove, Syscalls: []string{"kexec_load"}}})
	if statusField(out, "NoNewPrivs") != "0" || statusField(out, "CapEff") != "0000000000000020" || statusField(out, "CapPrm") != "0000000000000020" {
		t.Errorf("a root app with CAP_KILL and a filter: %q", out)
	}
}

func TestLaunchNoNewPrivileges(t *testing.T) {
	root := busyboxRoot(t)
	for _, nnp := range []bool{false, true} {
		out := mustLaunch(t, App{Root: root, Exec: sh("grep NoNewPrivs /proc/self/status"),
			Mounts: []Mount{procMount}, NoNewPrivileges: nnp})
		want := "0"
		if nnp {
			want = "1"
		}
		if got := statusField(out, "NoNewPrivs"); got != want {
			t.Errorf("NoNewPrivileges=%v: NoNewPrivs %q", nnp, got)
		}
	}
}

func TestLaunchLimits(t *testing.T) {
	root := busyboxRoot(t)
	adj := 500
	out := mustLaunch(t, App{Root: root, Exec: sh("ulimit -n; ulimit -Hn; cat /proc/self/oom_score_adj"),
		Mounts:      []Mount{procMount},
		Rlimits:     []Rlimit{{Resource: unix.RLIMIT_NOFILE, Soft: 123, Hard: 456}},
		OOMScoreAdj: &adj})
	if got := strings.Fields(out); strings.Join(got, " ") != "123 456 500" {
		t.Errorf("limits: %q, want 123 456 500", out)
	}

	// Without limits of its own the app has the caller's, not the ones Go
	// raised for the launcher.
	direct, err := exec.Command(busybox, "sh", "-c", "ulimit -n").Output()
	if err != nil {
		t.Fatal(err)
	}
	out = mustLaunch(t, App{Root: root, Exec: sh("ulimit -n")})
	if out != string(direct) {
		t.Errorf("RLIMIT_NOFILE %q, want the caller's %q", out, direct)
	}
}

func TestLaunchMaskedAndReadOnlyPaths(t *testing.T) {
	root := busyboxRoot(t)
	mustWrite(t, filepath.Join(root, "secret"), "password", 0o644)
	mustMkdir(t, filepath.Join(root, "secrets"))
	mustWrite(t, filepath.Join(root, "secrets", "key"), "key", 0o644)
	mustMkdir(t, filepath.Join(root, "data"))
	out, errOut, code := launch(t, App{Root: root,
		Exec: sh("cat /secret; ls -A /secrets; touch /tmp/ok && echo ok; " +
			"touch /secrets/new || touch /data/new || exit 3"),
		MaskedPaths:   []string{"/secret", "/secrets", "/does/not/exist"},
		ReadOnlyPaths: []string{"/data", "/nope"},
	})
	if code != 3 {
		t.Fatalf("touch in masked or read-only dirs succeeded: status %d, stderr %q", code, errOut)
	}
	if strings.Contains(out, "password") || strings.Contains(out, "key") {
		t.Errorf("masked content visible: %q", out)
	}
	if !strings.Contains(out, "ok") {
		t.Errorf("writable /tmp: %q %q", out, errOut)
	}
	if strings.Count(errOut, "Read-only file system") != 2 {
		t.Errorf("stderr %q, want two read-only failures", errOut)
	}
	if _, err := os.Stat(filepath.Join(root, "data", "new")); err == nil {
		t.Errorf("file created in a read-only path")
	}
}

func TestLaunchReadOnlyRootfs(t *testing.T) {
	root := busyboxRoot(t)
	out, errOut, code := launch(t, App{Root: root,
		Exec:           sh("touch /tmp/ok && echo tmp; touch /file"),
		ReadOnlyRootfs: true,
		Mounts:         []Mount{{Source: "tmpfs", Target: "/tmp", FSType: "tmpfs"}},
	})
	if code == 0 || !strings.Contains(out, "tmp") || !strings.Contains(errOut, "Read-only file system") {
		t.Errorf("read-only rootfs: status %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestLaunchMounts(t *testing.T) {
	root := busyboxRoot(t)
	vol := t.TempDir()
	mustWrite(t, filepath.Join(vol, "hello"), "from the host", 0o644)
	hostFile := filepath.Join(t.TempDir(), "file")
	mustWrite(t, hostFile, "single file", 0o644)
	out := mustLaunch(t, App{Root: root,
		Exec: sh("cat /mnt/vol/hello; echo; cat /etc/extra; echo; test -f /opt/new/extra && echo created-file; touch /mnt/vol/x 2>&1; " +
			"touch /run/through-link && echo linked; grep ' /mnt/noexec ' /proc/self/mounts"),
		Mounts: []Mount{
			procMount,
			{Source: vol, Target: "/mnt/vol", FSType: "bind", ReadOnly: true, CreateDir: true},
			{Source: vol, Target: "/mnt/noexec", FSType: "bind", Flags: unix.MS_NOEXEC | unix.MS_NOSUID | unix.MS_NODEV, CreateDir: true},
			{Source: hostFile, Target: "/etc/extra", FSType: "bind", CreateFile: true},
			// CreateDir on a file source makes a file to bind on.
			{Source: hostFile, Target: "/opt/new/extra", FSType: "bind", CreateDir: true},
			// /var/run is a symbolic link to /run inside the root.
			{Source: "tmpfs", Target: "/var/run", FSType: "tmpfs"},
		}})
	for _, want := range []string{"from the host", "single file", "created-file", "Read-only file system", "linked", "rw,nosuid,nodev,noexec"} {
		if !strings.Contains(out, want) {
			t.Errorf("output %q lacks %q", out, want)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "run", "through-link")); err == nil {
		t.Errorf("the tmpfs did not cover the root's /run")
	}
}

func TestLaunchMountsStayInsideRoot(t *testing.T) {
	root := busyboxRoot(t)
	outside := t.TempDir()
	// Links that point out of the root resolve inside it instead.
	if err := os.Symlink(outside, filepath.Join(root, "abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../../.."+outside, filepath.Join(root, "rel")); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{"/abs", "/rel", "/abs/sub", "/../../../.." + outside} {
		_, errOut, code := launch(t, App{Root: root, Exec: []string{"true"},
			Mounts: []Mount{{Source: "tmpfs", Target: target, FSType: "tmpfs", CreateDir: true}}})
		entries, _ := os.ReadDir(outside)
		if len(entries) != 0 {
			t.Fatalf("mount on %s created %v outside the root", target, entries)
		}
		if code == 0 {
			// Only possible by creating the path inside the root.
			if _, err := os.Stat(filepath.Join(root, outside)); err != nil {
				t.Errorf("mount on %s succeeded without a target inside the root", target)
			}
		} else if !strings.Contains(errOut, "mount "+target) {
			t.Errorf("mount on %s: %q", target, errOut)
		}
	}
}

func TestLaunchHostname(t *testing.T) {
	root := busyboxRoot(t)
	before, _ := os.Hostname()
	out := mustLaunch(t, App{Root: root, Exec: []string{"hostname"}, Hostname: "pod-host"})
	if strings.TrimSpace(out) != "pod-host" {
		t.Errorf("hostname %q", out)
	}
	if after, _ := os.Hostname(); after != before {
		t.Errorf("the caller's hostname changed to %q", after)
	}
}

func TestLaunchHidesHostRoot(t *testing.T) {
	root := busyboxRoot(t)
	out := mustLaunch(t, App{Root: root, Exec: sh("cat /proc/self/mountinfo"), Mounts: []Mount{procMount}})
	// After pivot_root the host's root is gone: the app's "/" is the
	// only mount at "/" and nothing is mounted outside it.
	roots := 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && f[4] == "/" {
			roots++
		}
	}
	if roots != 1 {
		t.Errorf("%d mounts at /, want 1:\n%s", roots, out)
	}
}

func containsString(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestLaunchIntoRunningApp(t *testing.T) {
	root := busyboxRoot(t)
	cmd, err := Command(App{Name: "first", Root: root,
		Exec:   sh("echo inside > /tmp/m/marker; exec sleep 30"),
		Mounts: []Mount{{Source: "tmpfs", Target: "/tmp/m", FSType: "tmpfs", CreateDir: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("busybox", filepath.Join(root, "bin", "sleep")); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	appRoot := "/proc/" + strconv.Itoa(cmd.Process.Pid) + "/root"
	for i := 0; ; i++ {
		if _, err := os.Stat(appRoot + "/tmp/m/marker"); err == nil {
			break
		}
		if i == 500 {
			t.Fatal("the first app did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The second launch sees the first app's root with its mounts.
	out := mustLaunch(t, App{Name: "second", Root: appRoot, Exec: []string{"cat", "/tmp/m/marker"}, User: "alice"})
	if strings.TrimSpace(out) != "inside" {
		t.Errorf("entered app sees %q", out)
	}
	// Mounts can not be made in another app's namespace.
	_, errOut, code := launch(t, App{Name: "third", Root: appRoot, Exec: []string{"true"}, ReadOnlyRootfs: true})
	if code != ExitSetupFailed || !strings.Contains(errOut, "bind-mount root") {
		t.Errorf("mounts into a running app: status %d, stderr %q", code, errOut)
	}
}

func TestLaunchWithSockets(t *testing.T) {
	root := busyboxRoot(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	w.WriteString("through the socket")
	w.Close()
	defer r.Close()
	app := App{Name: "sock", Root: root, Mounts: []Mount{procMount},
		Exec: sh(`[ "$LISTEN_PID" = "$$" ] && echo "fds=$LISTEN_FDS"; cat <&3`),
		Env:  []string{"PATH=/bin", "LISTEN_PID=1", "LISTEN_FDS=9"}}
	cmd, err := CommandWithSockets(app, []*os.File{r})
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	if out.String() != "fds=1\nthrough the socket" {
		t.Errorf("the app's sockets: %q", out.String())
	}
	// Without sockets an image's LISTEN_* claims nothing.
	app.Exec = sh(`echo "fds=$LISTEN_FDS pid=$LISTEN_PID"`)
	cmd, err = Command(app)
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	if out.String() != "fds= pid=\n" {
		t.Errorf("LISTEN_* left for an app without sockets: %q", out.String())
	}
}

func TestLaunchEtcFiles(t *testing.T) {
	root := busyboxRoot(t)
	out := mustLaunch(t, App{Root: root, Exec: sh("readlink /etc/mtab; cat /etc/hostname"), HostnameFile: "named"})
	if out != "../proc/self/mounts\nnamed\n" {
		t.Errorf("output %q", out)
	}
	// An image's own /etc/mtab is kept.
	os.Remove(filepath.Join(root, "etc", "mtab"))
	mustWrite(t, filepath.Join(root, "etc", "mtab"), "mine\n", 0o644)
	if out := mustLaunch(t, App{Root: root, Exec: sh("cat /etc/mtab")}); out != "mine\n" {
		t.Errorf("the image's /etc/mtab was replaced: %q", out)
	}
}
