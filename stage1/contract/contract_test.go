package contract

import (
	"os"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// The names are rkt's: a stage1 image made for rkt must keep working.
func TestAnnotationsAreRkts(t *testing.T) {
	want := map[Entrypoint]string{
		Run:   "coreos.com/rkt/stage1/run",
		Enter: "coreos.com/rkt/stage1/enter",
		GC:    "coreos.com/rkt/stage1/gc",
		Stop:  "coreos.com/rkt/stage1/stop",
	}
	if len(Entrypoints()) != len(want) {
		t.Fatalf("Entrypoints() = %v", Entrypoints())
	}
	for _, e := range Entrypoints() {
		if e.Annotation() != want[e] {
			t.Errorf("%s: annotation %q, want %q", e, e.Annotation(), want[e])
		}
	}
	if AnnotationInterfaceVersion != "coreos.com/rkt/stage1/interface-version" {
		t.Errorf("AnnotationInterfaceVersion = %q", AnnotationInterfaceVersion)
	}
	if AnnotationMutable != "coreos.com/rkt/stage1/mutable" {
		t.Errorf("AnnotationMutable = %q", AnnotationMutable)
	}
	if LockFDEnv != "RKT_LOCK_FD" {
		t.Errorf("LockFDEnv = %q", LockFDEnv)
	}
}

func TestExitStatuses(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"ExitFailure", ExitFailure, 254},
		{"ExitAppSetupFailed", ExitAppSetupFailed, 125},
		{"ExitAppNotExecutable", ExitAppNotExecutable, 126},
		{"ExitAppNotFound", ExitAppNotFound, 127},
		{"ExitSignaled(SIGKILL)", ExitSignaled(syscall.SIGKILL), 137},
		{"ExitSignaled(SIGTERM)", ExitSignaled(syscall.SIGTERM), 143},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

func TestParseInterfaceVersion(t *testing.T) {
	for _, c := range []struct {
		value string
		ok    bool
		want  int
	}{
		{"", false, 1},
		{"4", true, 4},
		{" 3\n", true, 3},
		{"0", true, 1},
		{"-2", true, 1},
		{"four", true, 1},
		{"", true, 1},
		{"5", true, 5},
	} {
		if got := ParseInterfaceVersion(c.value, c.ok); got != c.want {
			t.Errorf("ParseInterfaceVersion(%q, %v) = %d, want %d", c.value, c.ok, got, c.want)
		}
	}
}

func TestRunFlagSince(t *testing.T) {
	for flag, want := range map[string]int{
		FlagDebug: 1, FlagNet: 1, FlagMDSToken: 1, FlagInteractive: 1, FlagLocalConfig: 1,
		FlagPrivateUsers: 1, FlagMutable: 1,
		FlagHostname:                       2,
		FlagDisableCapabilitiesRestriction: 3, FlagDisablePaths: 3, FlagDisableSeccomp: 3,
		FlagDNSConfMode: 4, FlagIPC: 4,
		"no-such-flag": 0,
	} {
		if got := RunFlagSince(flag); got != want {
			t.Errorf("RunFlagSince(%q) = %d, want %d", flag, got, want)
		}
	}
}

// every gives every run flag a value.
func every() RunOptions {
	return RunOptions{
		Debug: true, Net: "host", MDSToken: "tok", Interactive: true, LocalConfig: "/etc/orbit",
		PrivateUsers: "1000:65536", Mutable: true, Hostname: "h",
		DisableCapabilitiesRestriction: true, DisablePaths: true, DisableSeccomp: true,
		DNSConfMode: "resolv=stage0,hosts=default", IPC: "parent",
	}
}

// Built for version v and parsed back, the options keep exactly the flags
// v knows.
func TestRunArgsRoundTrip(t *testing.T) {
	for v := MinInterfaceVersion; v <= InterfaceVersion+1; v++ {
		t.Run("v"+strconv.Itoa(v), func(t *testing.T) {
			o := every()
			args := o.Args(v, "uuid-1")
			if args[len(args)-1] != "uuid-1" {
				t.Fatalf("the UUID is not last: %q", args)
			}
			got, uuid, err := ParseRun(args)
			if err != nil {
				t.Fatalf("ParseRun(%q): %v", args, err)
			}
			if uuid != "uuid-1" {
				t.Errorf("uuid %q", uuid)
			}
			want := every()
			if v < 2 {
				want.Hostname = ""
			}
			if v < 3 {
				want.DisableCapabilitiesRestriction, want.DisablePaths, want.DisableSeccomp = false, false, false
			}
			if v < 4 {
				want.DNSConfMode, want.IPC = "", ""
			}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("round trip at v%d:\n got %+v\nwant %+v", v, *got, want)
			}
		})
	}
}

// The arguments stage0 gives are what rkt's stage1 images expect, in a
// fixed order.
func TestRunArgsExact(t *testing.T) {
	o := RunOptions{Debug: true, Net: "default,host", Hostname: "h", DisableSeccomp: true, DNSConfMode: "resolv=host,hosts=default"}
	want := []string{"--debug", "--net=default,host", "--hostname=h", "--disable-seccomp", "--dns-conf-mode=resolv=host,hosts=default", "u"}
	if got := o.Args(4, "u"); !reflect.DeepEqual(got, want) {
		t.Errorf("Args(4) = %q, want %q", got, want)
	}
	if got := (&RunOptions{}).Args(4, "u"); !reflect.DeepEqual(got, []string{"u"}) {
		t.Errorf("no options: %q", got)
	}
	if got := o.Args(1, "u"); !reflect.DeepEqual(got, []string{"--debug", "--net=default,host", "u"}) {
		t.Errorf("Args(1) = %q", got)
	}
}

func TestParseRunRefuses(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"--debug"},
		{"a", "b"},
		{"--no-such-flag", "u"},
		{"--interactive=maybe", "u"},
	} {
		if _, _, err := ParseRun(args); err == nil {
			t.Errorf("ParseRun(%q) succeeded", args)
		}
	}
}

func TestEnterArgsRoundTrip(t *testing.T) {
	for _, e := range []EnterArgs{
		{Pid: 42, App: "web", Command: []string{"/bin/ls", "-l", "--", "--pid=1"}},
		{Pid: 1, App: "a", Command: DefaultEnterCommand()},
	} {
		args := e.Args()
		got, err := ParseEnter(args)
		if err != nil {
			t.Fatalf("ParseEnter(%q): %v", args, err)
		}
		if !reflect.DeepEqual(*got, e) {
			t.Errorf("round trip: got %+v, want %+v", *got, e)
		}
	}
	got, err := ParseEnter((&EnterArgs{Pid: 7, App: "a"}).Args())
	if err != nil || !reflect.DeepEqual(got.Command, []string{"/bin/sh"}) {
		t.Errorf("no command: %+v, %v", got, err)
	}
	if want := []string{"--pid=7", "--appname=a", "--", "id"}; !reflect.DeepEqual((&EnterArgs{Pid: 7, App: "a", Command: []string{"id"}}).Args(), want) {
		t.Errorf("Args() = %q, want %q", (&EnterArgs{Pid: 7, App: "a", Command: []string{"id"}}).Args(), want)
	}
	for _, args := range [][]string{{"--appname=a"}, {"--pid=0", "--appname=a"}, {"--pid=x"}} {
		if _, err := ParseEnter(args); err == nil {
			t.Errorf("ParseEnter(%q) succeeded", args)
		}
	}
}

func TestGCAndStopArgsRoundTrip(t *testing.T) {
	for _, g := range []GCArgs{{UUID: "u"}, {Debug: true, UUID: "u"}} {
		got, err := ParseGC(g.Args())
		if err != nil || *got != g {
			t.Errorf("gc %q: %+v, %v", g.Args(), got, err)
		}
	}
	if got := (&GCArgs{Debug: true, UUID: "u"}).Args(); !reflect.DeepEqual(got, []string{"--debug", "u"}) {
		t.Errorf("gc args %q", got)
	}
	for _, s := range []StopArgs{{UUID: "u"}, {Force: true, UUID: "u"}} {
		got, err := ParseStop(s.Args())
		if err != nil || *got != s {
			t.Errorf("stop %q: %+v, %v", s.Args(), got, err)
		}
	}
	if got := (&StopArgs{Force: true, UUID: "u"}).Args(); !reflect.DeepEqual(got, []string{"--force", "u"}) {
		t.Errorf("stop args %q", got)
	}
	if _, err := ParseGC(nil); err == nil {
		t.Error("gc without a UUID accepted")
	}
	if _, err := ParseStop([]string{"--force"}); err == nil {
		t.Error("stop without a UUID accepted")
	}
}

func TestTakeLock(t *testing.T) {
	f, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	kv := LockFDEnvVar(fd)
	if kv != "RKT_LOCK_FD="+strconv.Itoa(fd) {
		t.Fatalf("LockFDEnvVar = %q", kv)
	}
	t.Setenv(LockFDEnv, strconv.Itoa(fd))
	lock := TakeLock()
	if lock == nil {
		t.Fatal("no lock taken")
	}
	defer lock.Close()
	if int(lock.Fd()) != fd {
		t.Errorf("lock fd %d, want %d", lock.Fd(), fd)
	}
	if _, ok := os.LookupEnv(LockFDEnv); ok {
		t.Error("the lock is still in the environment")
	}
	flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_GETFD, 0)
	if errno != 0 || flags&syscall.FD_CLOEXEC == 0 {
		t.Errorf("the lock is not close-on-exec (flags %#x, %v)", flags, errno)
	}

	t.Setenv(LockFDEnv, "not-a-number")
	if TakeLock() != nil {
		t.Error("a lock from a bad variable")
	}
	os.Unsetenv(LockFDEnv)
	if TakeLock() != nil {
		t.Error("a lock from no variable")
	}
}

func TestMetadataEndpoint(t *testing.T) {
	for _, c := range []struct {
		in   string
		port int
		tok  string
		url  string
	}{
		{"abc_-DEF", MetadataPort, "abc_-DEF", "http://127.0.0.1:18112/abc_-DEF"},
		{"2000:tok", 2000, "tok", "http://127.0.0.1:2000/tok"},
	} {
		m, err := ParseMetadataEndpoint(c.in)
		if err != nil || m.Port != c.port || m.Token != c.tok {
			t.Errorf("ParseMetadataEndpoint(%q) = %+v, %v", c.in, m, err)
			continue
		}
		if got := m.String(); got != c.in {
			t.Errorf("String() = %q, want %q", got, c.in)
		}
		if got := m.URL("127.0.0.1"); got != c.url {
			t.Errorf("URL = %q, want %q", got, c.url)
		}
	}
	if got := (MetadataEndpoint{Port: MetadataPort, Token: "t"}).URL("fd00::1"); got != "http://[fd00::1]:18112/t" {
		t.Errorf("IPv6 URL = %q", got)
	}
	for _, bad := range []string{"", "x:tok", "0:tok", "70000:tok", "a/b", "1:", "tok en", "1:a:b"} {
		if _, err := ParseMetadataEndpoint(bad); err == nil {
			t.Errorf("ParseMetadataEndpoint(%q) accepted", bad)
		}
	}
}

func TestScrubArgv(t *testing.T) {
	saved := os.Args
	defer func() { os.Args = saved }()
	// Strings in writable memory, as argv is.
	mk := func(s string) string { return string([]byte(s)) }
	os.Args = []string{mk("run"), mk("--mds-token=secret"), mk("--mds-token"), mk("other"), mk("--net=host"), mk("--"), mk("--mds-token=kept")}
	o, _, err := ParseRun([]string{"--mds-token=secret", "--net=host", "uuid"})
	if err != nil || o.MDSToken != "secret" {
		t.Fatalf("ParseRun = %+v, %v", o, err)
	}
	want := []string{"run", "--mds-token=xxxxxx", "--mds-token", "xxxxx", "--net=host", "--", "--mds-token=kept"}
	if strings.Join(os.Args, " ") != strings.Join(want, " ") {
		t.Errorf("argv = %q, want %q", os.Args, want)
	}
}
