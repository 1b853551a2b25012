package tests

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The first hour of a new user: the README's tour runs as printed, and the
// mistakes a newcomer makes get one line naming the problem and the fix.

// firsthourTourBlock reads the commands of README.md's "A short tour"
// block, as printed there.
func firsthourTourBlock(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	inTour, inBlock := false, false
	s := bufio.NewScanner(strings.NewReader(string(data)))
	for s.Scan() {
		l := s.Text()
		switch {
		case strings.HasPrefix(l, "## "):
			inTour = l == "## A short tour"
		case inTour && !inBlock && strings.HasPrefix(l, "```sh"):
			inBlock = true
		case inBlock && strings.HasPrefix(l, "```"):
			return strings.Join(lines, "\n") + "\n"
		case inBlock:
			lines = append(lines, l)
		}
	}
	t.Fatal(`README.md has no "## A short tour" section with a sh block`)
	return ""
}

// firsthourWrapper puts an "orbit" on PATH that runs the binary under
// test with the env's data and configuration directories, so the tour's
// commands run unchanged without touching /var/lib/orbit.
func firsthourWrapper(t *testing.T, e *env) string {
	t.Helper()
	dir := t.TempDir()
	var quoted []string
	for _, a := range e.args() {
		quoted = append(quoted, "'"+a+"'")
	}
	script := fmt.Sprintf("#!/bin/sh\nexec '%s' %s \"$@\"\n", binary, strings.Join(quoted, " "))
	if err := os.WriteFile(filepath.Join(dir, "orbit"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// firsthourNetns makes a network namespace with only loopback up, removed
// when the test ends: what orbit does to networks stays in it. Commands
// join it with nsenter --net (ip netns exec would remount /sys, hiding the
// cgroup hierarchies).
func firsthourNetns(t *testing.T) string {
	t.Helper()
	requireTool(t, "ip", "iproute2")
	name := fmt.Sprintf("orbit-fh-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip link set lo up: %v: %s", err, out)
	}
	return name
}

// The README's tour, every line as printed, from the top of a copy of the
// tree where `make demo` has built the example image.
func TestFirsthourTour(t *testing.T) {
	requireTool(t, "systemd-nspawn", "systemd-container")
	requireKVM(t) // the tour's kvm pod
	requireTool(t, "nsenter", "util-linux")
	requireTool(t, "busybox", "busybox-static")
	tour := firsthourTourBlock(t)
	e := newEnv(t)
	path := firsthourWrapper(t, e) + ":" + os.Getenv("PATH")
	tree := t.TempDir()
	if out, err := exec.Command("cp", "-r", "../examples", tree).CombinedOutput(); err != nil {
		t.Fatalf("copying examples: %v: %s", err, out)
	}
	os.RemoveAll(filepath.Join(tree, "examples/hello/out"))
	demo := exec.Command("./examples/hello/demo.sh", filepath.Join(strings.SplitN(path, ":", 2)[0], "orbit"))
	demo.Dir = tree
	demo.Env = append(os.Environ(), "PATH="+path)
	if out, err := demo.CombinedOutput(); err != nil {
		t.Fatalf("examples/hello/demo.sh (what make demo runs): %v\n%s", err, out)
	}
	ns := firsthourNetns(t)
	script := filepath.Join(t.TempDir(), "tour.sh")
	writeFile(t, script, tour)
	cmd := exec.Command("nsenter", "--net=/run/netns/"+ns, "timeout", "300", "bash", "-e", "-x", script)
	cmd.Dir = tree
	cmd.Env = append(os.Environ(), "PATH="+path)
	r := runCommand(t, cmd)
	if r.Code != 0 {
		t.Fatalf("the README's tour failed as printed:\n%s\n--- tour ---\n%s", r, tour)
	}
	// Every orbit line of the tour ran (bash -x shows each command).
	want := 0
	for _, l := range strings.Split(tour, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "orbit ") {
			want++
		}
	}
	got := strings.Count(r.Stderr, "+ orbit ")
	if want == 0 || got < want {
		t.Errorf("the tour has %d orbit lines, %d ran:\n%s", want, got, r)
	}
	// Nothing the tour started is left running.
	out := e.mustRun("list", "--format=json").Stdout
	var pods []struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(out), &pods); err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		if p.State == "running" {
			t.Errorf("the tour left a running pod: %s", out)
		}
	}
}

// firsthourOneLine checks a refusal: exit 254 and one stderr line (after
// any warnings) holding every fragment.
func firsthourOneLine(t *testing.T, what string, r result, fragments ...string) {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(r.Stderr), "\n") {
		if l != "" && !strings.HasPrefix(l, "orbit: warning") {
			lines = append(lines, l)
		}
	}
	if r.Code != 254 || len(lines) != 1 || !strings.HasPrefix(lines[0], "orbit: ") {
		t.Errorf("%s: want exit 254 and one error line:\n%s", what, r)
		return
	}
	for _, f := range fragments {
		if !strings.Contains(lines[0], f) {
			t.Errorf("%s: %q does not say %q", what, lines[0], f)
		}
	}
}

func TestFirsthourUsageErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := busyboxACI(t, "example.com/fh", "/bin/true")
	e.mustRun("fetch", "--insecure-options=image", img)
	for _, tc := range []struct {
		args      []string
		fragments []string
	}{
		{[]string{"run"}, []string{"run needs an IMAGE", "(see 'orbit run --help')"}},
		{[]string{"prepare"}, []string{"prepare needs an IMAGE"}},
		{[]string{"status"}, []string{"status needs a pod UUID or --uuid-file"}},
		{[]string{"enter"}, []string{"enter needs a pod UUID"}},
		{[]string{"run-prepared"}, []string{"run-prepared needs a pod UUID"}},
		{[]string{"image", "rm"}, []string{"image rm needs an image ID or NAME"}},
		{[]string{"stop"}, []string{"stop needs a pod UUID"}},
		{[]string{"lst"}, []string{`unknown command "lst"`, `did you mean "list"?`}},
		// A global flag after the image says where it goes.
		{[]string{"run", "example.com/fh", "--insecure-options=image"}, []string{"--insecure-options is a global flag", "give it before the image", "'orbit run --insecure-options=image example.com/fh'"}},
		{[]string{"run", "--insecure-options=image", "example.com/fh", "--volume=v,kind=empty"}, []string{"--volume applies to the whole pod", "before the first image"}},
		{[]string{"list", "--uuid-file=x"}, []string{"unknown flag: --uuid-file", "is a flag of", "'orbit status'"}},
		// Bad values are refused before anything is fetched: the image
		// file does not exist, and that is not what is reported.
		{[]string{"run", "--insecure-options=image", "./no-such.aci", "--memory=lots"}, []string{`--memory: "lots"`, "512M"}},
		{[]string{"run", "--insecure-options=image", "--volume=foo", "./no-such.aci"}, []string{`--volume "foo"`}},
		{[]string{"run", "--insecure-options=image", "--port=foo", "./no-such.aci"}, []string{`--port="foo"`, "NAME:[IP:]HOSTPORT"}},
		{[]string{"run", "--insecure-options=image", "--stage1-name=fly", "--ipc=private", "./no-such.aci"}, []string{"--ipc=private", "fly"}},
	} {
		r := e.run(tc.args...)
		firsthourOneLine(t, strings.Join(tc.args, " "), r, tc.fragments...)
		if strings.Contains(r.Stderr, "not found") || strings.Contains(r.Stderr, "image file") {
			t.Errorf("%v: the image was looked for before the flags were checked: %s", tc.args, r.Stderr)
		}
		if strings.Contains(r.Stderr, "accepts") || strings.Contains(r.Stderr, "regexp") || strings.Contains(r.Stderr, "^") {
			t.Errorf("%v: cobra's or a regular expression's wording: %s", tc.args, r.Stderr)
		}
	}
	if out := e.mustRun("list", "--quiet").Stdout; out != "" {
		t.Errorf("refused command lines left pods: %q", out)
	}
}

// A misspelled image name or version: not stored, not discoverable, and
// which stored images have that name. Run in a namespace of its own:
// discovery's lookups go nowhere.
func TestFirsthourMisspelledImage(t *testing.T) {
	e := newEnv(t)
	e.mustRun("fetch", "--insecure-options=image", busyboxACI(t, "example.com/hello", "/bin/true"))
	ns := firsthourNetns(t)
	for _, tc := range []struct {
		ref       string
		fragments []string
	}{
		{"example.com/hello:2.0", []string{"image example.com/hello:2.0 is not in the store and not discoverable", "stored images with that name: example.com/hello"}},
		{"example.com/helo", []string{"not in the store and not discoverable", "similar name: example.com/hello"}},
		{"example.org/other", []string{"not in the store and not discoverable", "no stored image has that name"}},
	} {
		cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + ns, binary}, e.args("run", "--insecure-options=image", tc.ref)...)...)
		r := runCommand(t, cmd)
		firsthourOneLine(t, tc.ref, r, tc.fragments...)
		if len(r.Stderr) > 300 {
			t.Errorf("%s: the error is %d characters long: %s", tc.ref, len(r.Stderr), r.Stderr)
		}
	}
}

// A user other than root is told up front that a command needs root.
func TestFirsthourNeedsRoot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// Both the test's directory and the one above it (0700 as made).
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "orbit")
	data, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(dir, "data")
	os.Mkdir(store, 0o700)
	for _, tc := range []struct {
		args      []string
		fragments []string
	}{
		{[]string{"run", "example.com/x"}, []string{"needs root for 'orbit run'", "sudo"}},
		{[]string{"fetch", "x.aci"}, []string{"needs root for 'orbit fetch'"}},
		{[]string{"stop", "abc"}, []string{"needs root for 'orbit stop'"}},
		{[]string{"list"}, []string{"needs root for 'orbit list'", "permission denied"}},
	} {
		cmd := exec.Command(bin, append([]string{"--dir=" + store}, tc.args...)...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		firsthourOneLine(t, strings.Join(tc.args, " "), runCommand(t, cmd), tc.fragments...)
	}
}

// enter into a pod of several apps without --app names the apps; an app
// killed for running out of memory exits 137 and says so.
func TestFirsthourPodMessages(t *testing.T) {
	requireTool(t, "systemd-nspawn", "systemd-container")
	t.Parallel()
	e := newEnv(t)
	a := busyboxACI(t, "example.com/fh-a", "/bin/sleep", "600")
	b := busyboxACI(t, "example.com/fh-b", "/bin/sleep", "600")
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	cmd := e.command("run", "--insecure-options=image", "--uuid-file-save="+uuidFile, a, b)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		if uuid, err := os.ReadFile(uuidFile); err == nil {
			e.runQuiet("stop", "--force", string(uuid))
		}
		select {
		case <-exited:
		case <-time.After(time.Minute):
			cmd.Process.Kill()
		}
	})
	var uuid []byte
	for deadline := time.Now().Add(time.Minute); len(uuid) == 0; time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			t.Fatalf("orbit run of two apps ended early: %v", cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("orbit run wrote no --uuid-file-save within a minute")
		}
		uuid, _ = os.ReadFile(uuidFile)
	}
	e.mustRun("status", "--wait-ready=1m", string(uuid))
	r := e.run("enter", string(uuid), "/bin/true")
	firsthourOneLine(t, "enter without --app", r, "has 2 apps (fh-a, fh-b)", "--app=fh-a")
	e.mustRun("stop", string(uuid))
	e.mustRun("status", "--wait=1m", string(uuid))

	img := busyboxACI(t, "example.com/fh-oom", "/bin/sh", "-c", `x=a; while true; do x="$x$x"; done`)
	start := time.Now()
	r = e.run("run", "--insecure-options=image", img, "--memory=8Mi")
	if r.Code != 137 || !strings.Contains(r.Stderr, "app fh-oom was killed for running out of memory") {
		t.Errorf("an app over its memory limit (after %s): want exit 137 and a line saying so:\n%s", time.Since(start), r)
	}
}

// Output for scripts: --no-legend rows have fields separated by exactly
// one tab, and --quiet prints IDs only. status --uuid-file, config
// --pretty-print and run-prepared --ipc are there, as in rkt.
func TestFirsthourScriptOutput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := busyboxACI(t, "example.com/fh-script", "/bin/true")
	id := strings.TrimSpace(e.mustRun("fetch", "--insecure-options=image", img).Stdout)
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	e.mustRun("prepare", "--insecure-options=image", "--uuid-file-save="+uuidFile, img)
	uuid, _ := os.ReadFile(uuidFile)

	rows := strings.Split(strings.TrimSuffix(e.mustRun("list", "--no-legend").Stdout, "\n"), "\n")
	if len(rows) != 1 || len(strings.Split(rows[0], "\t")) != 7 || strings.Split(rows[0], "\t")[3] != "prepared" {
		t.Errorf("list --no-legend: want one row of 7 tab-separated fields, the 4th the state: %q", rows)
	}
	if out := strings.TrimSpace(e.mustRun("list", "-q").Stdout); out != string(uuid) {
		t.Errorf("list -q: %q, want %q", out, uuid)
	}
	if out := e.mustRun("list").Stdout; strings.Contains(out, "\t") || !strings.HasPrefix(out, "UUID  ") {
		t.Errorf("list for people: aligned with spaces under a header: %q", out)
	}
	// The store holds the stage1 image too; the short IDs of image list
	// are rkt's, shorter than fetch's.
	found := false
	for _, row := range strings.Split(strings.TrimSpace(e.mustRun("image", "list", "--no-legend", "--fields=id,name").Stdout), "\n") {
		f := strings.Split(row, "\t")
		if len(f) != 2 {
			t.Errorf("image list --no-legend --fields=id,name: row %q is not two tab-separated fields", row)
		}
		found = found || (f[1] == "example.com/fh-script" && strings.HasPrefix(id, f[0]))
	}
	if !found {
		t.Errorf("image list --no-legend: no row for %s", id)
	}
	quiet := strings.Fields(e.mustRun("image", "list", "--quiet", "--full").Stdout)
	if len(quiet) != 2 || (quiet[0] != e.fullImageID(id) && quiet[1] != e.fullImageID(id)) {
		t.Errorf("image list --quiet --full: %q, want two full IDs, one %s's", quiet, id)
	}
	if out := e.mustRun("status", "--uuid-file="+uuidFile).Stdout; !strings.Contains(out, "state=prepared") {
		t.Errorf("status --uuid-file: %q", out)
	}
	if out := strings.TrimSpace(e.mustRun("config", "--pretty-print=false").Stdout); strings.Contains(out, "\n") || !strings.HasPrefix(out, `{"stage0":`) {
		t.Errorf("config --pretty-print=false: %q", out)
	}
	if out := e.mustRun("config").Stdout; !strings.Contains(out, "\n  ") {
		t.Errorf("config pretty-prints by default: %q", out)
	}
	r := e.run("run-prepared", "--ipc=sometimes", string(uuid))
	firsthourOneLine(t, "run-prepared --ipc=sometimes", r, "want auto, private or parent")
	if out := e.mustRun("status", string(uuid)).Stdout; !strings.Contains(out, "state=prepared") {
		t.Errorf("a refused run-prepared changed the pod: %q", out)
	}
}

// fullImageID is the full ID of a stored image given by a short one.
func (e *env) fullImageID(short string) string {
	for _, id := range strings.Fields(e.mustRun("image", "list", "--quiet", "--full").Stdout) {
		if strings.HasPrefix(id, short) {
			return id
		}
	}
	return ""
}

// firsthourCompletions asks orbit's shell completion what it offers after
// args (as the shell does on TAB), without descriptions.
func firsthourCompletions(t *testing.T, e *env, args ...string) []string {
	t.Helper()
	r := e.mustRun(append([]string{"__completeNoDesc"}, args...)...)
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		if l != "" && !strings.HasPrefix(l, ":") {
			out = append(out, l)
		}
	}
	return out
}

// `orbit stop <TAB>` offers the running pods' UUIDs, run-prepared the
// prepared ones; run the stored images; --stage1-name the flavours;
// enter --app the pod's apps.
func TestFirsthourCompletion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	img := busyboxACI(t, "example.com/fh-comp", "/bin/sleep", "600")
	id := strings.TrimSpace(e.mustRun("fetch", "--insecure-options=image", "--full", img).Stdout)
	dir := t.TempDir()
	e.mustRun("prepare", "--insecure-options=image", "--uuid-file-save="+filepath.Join(dir, "prepared"), img)
	prepared, _ := os.ReadFile(filepath.Join(dir, "prepared"))
	e.mustRun("prepare", "--insecure-options=image", "--stage1-name=fly", "--uuid-file-save="+filepath.Join(dir, "running"), img)
	running, _ := os.ReadFile(filepath.Join(dir, "running"))
	cmd := e.command("run-prepared", string(running))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.runQuiet("stop", "--force", string(running))
		cmd.Wait()
	})
	e.mustRun("status", "--wait-ready=1m", string(running))

	check := func(got []string, want ...string) {
		t.Helper()
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("completion offers %q, want %q", got, want)
		}
	}
	check(firsthourCompletions(t, e, "stop", ""), string(running))
	check(firsthourCompletions(t, e, "enter", ""), string(running))
	check(firsthourCompletions(t, e, "run-prepared", ""), string(prepared))
	check(firsthourCompletions(t, e, "enter", "--app", ""), "fh-comp")
	check(firsthourCompletions(t, e, "run", "--stage1-name", ""), "fly", "nspawn", "kvm")
	check(firsthourCompletions(t, e, "run", "--net", ""), "host", "none", "default", "default-restricted")
	got := firsthourCompletions(t, e, "image", "rm", "example.com/fh")
	check(got, "example.com/fh-comp")
	got = firsthourCompletions(t, e, "run", id[:20])
	check(got, id)
}
