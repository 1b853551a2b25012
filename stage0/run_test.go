package stage0

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
)

func stage1WithVersion(t *testing.T, version string) *Stage1 {
	t.Helper()
	var anns []types.Annotation
	if version != "" {
		anns = append(anns, types.Annotation{Name: contract.AnnotationInterfaceVersion, Value: version})
	}
	return &Stage1{Manifest: stage1Image(t, anns...), Rootfs: "/pod/stage1/rootfs"}
}

func TestStage1InterfaceVersion(t *testing.T) {
	for in, want := range map[string]int{"": 1, "1": 1, "2": 2, " 3 ": 3, "4": 4, "5": 5, "0": 1, "-2": 1, "four": 1} {
		if got := stage1WithVersion(t, in).InterfaceVersion(); got != want {
			t.Errorf("interface-version %q: %d, want %d", in, got, want)
		}
	}
}

// The run entrypoint gets only the flags its stage1's interface version
// knows, in rkt's order, and the pod's UUID last.
func TestRunArgsByInterfaceVersion(t *testing.T) {
	const uuid = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
	full := RunConfig{
		Debug: true, Interactive: true, Hostname: "web-1", Net: []string{"default", "other:IP=10.0.0.2"},
		LocalConfig: "/etc/orbit", MDSToken: "token",
		DisableCapabilitiesRestriction: true, DisablePaths: true, DisableSeccomp: true,
		dnsConfMode: "resolv=stage0,hosts=default",
	}
	v1 := []string{"--debug", "--net=default,other:IP=10.0.0.2", "--mds-token=token", "--interactive", "--local-config=/etc/orbit"}
	v2 := append(append([]string(nil), v1...), "--hostname=web-1")
	v3 := append(append([]string(nil), v2...), "--disable-capabilities-restriction", "--disable-paths", "--disable-seccomp")
	v4 := append(append([]string(nil), v3...), "--dns-conf-mode=resolv=stage0,hosts=default")
	for _, tc := range []struct {
		version string
		want    []string
	}{
		{"", v1}, {"1", v1}, {"2", v2}, {"3", v3}, {"4", v4}, {"5", v4},
	} {
		got := stage1WithVersion(t, tc.version).runArgs(uuid, full)
		if want := append(append([]string(nil), tc.want...), uuid); !reflect.DeepEqual(got, want) {
			t.Errorf("version %q:\n got %q\nwant %q", tc.version, got, want)
		}
	}
	// Nothing asked: the UUID alone, whatever the version.
	for _, v := range []string{"1", "4"} {
		if got := stage1WithVersion(t, v).runArgs(uuid, RunConfig{}); !reflect.DeepEqual(got, []string{uuid}) {
			t.Errorf("version %s, empty config: %q", v, got)
		}
	}
}

// An entrypoint is a path inside the stage1 rootfs, whatever the
// annotation says; a missing one is not found.
func TestStage1Entrypoint(t *testing.T) {
	s1 := stage1WithVersion(t, "")
	s1.Manifest.Annotations.Set(types.ACIdentifier(contract.GC.Annotation()), "../../../usr/bin/gc")
	for e, want := range map[contract.Entrypoint]string{contract.Run: "/pod/stage1/rootfs/run", contract.GC: "/pod/stage1/rootfs/usr/bin/gc"} {
		if got, err := s1.Entrypoint(e); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", e, got, err, want)
		}
	}
	if _, err := s1.Entrypoint(contract.Enter); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), contract.Enter.Annotation()) {
		t.Errorf("missing entrypoint: %v", err)
	}
}

func TestStage1Of(t *testing.T) {
	p, _ := newPreparingPod(t)
	if _, err := Stage1Of(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no stage1 manifest: %v", err)
	}
	if err := os.MkdirAll(p.File("stage1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.File("stage1", "manifest"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Stage1Of(p); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("a malformed stage1 manifest: %v, want invalid", err)
	}
}

// preparedPod is a pod prepared (by copying) from a fake store whose
// stage1 image has the given manifest; it is held in prepare.
func preparedPod(t *testing.T, flavour string, s1 *schema.ImageManifest) (*Pod, string) {
	t.Helper()
	trees := newFakeTrees(t)
	s1ID := trees.add("example.com/stage1", s1)
	app := trees.add("example.com/web", nil)
	p, podsDir := newPreparingPod(t)
	if err := Prepare(t.Context(), p, PrepareConfig{Trees: trees, Stage1ImageID: s1ID, Stage1Flavour: flavour, Spec: PodSpec{Apps: []AppSpec{{ImageID: app}}}}); err != nil {
		t.Fatal(err)
	}
	return p, podsDir
}

// Run refuses what the pod's stage1 cannot do before it starts the pod:
// the pod stays where it was, not moved to run.
func TestRunRefusesBeforeStarting(t *testing.T) {
	v3 := types.Annotation{Name: contract.AnnotationInterfaceVersion, Value: "3"}
	for _, tc := range []struct {
		name    string
		flavour string
		s1      []types.Annotation
		cfg     RunConfig
		mention string
	}{
		{"bad hostname", "nspawn", nil, RunConfig{Hostname: "bad_name"}, "bad_name"},
		{"network for the fly flavour", "fly", nil, RunConfig{Net: []string{"default"}}, "host's network"},
		{"bad network name", "", nil, RunConfig{Net: []string{"Not A Name"}}, "Not A Name"},
		{"contradictory DNS", "nspawn", nil, RunConfig{DNS: DNSConfig{Servers: []string{"host", "192.0.2.1"}}}, `name server "host" must be the only one`},
		{"DNS for an older stage1", "", []types.Annotation{v3}, RunConfig{DNS: DNSConfig{Servers: []string{"192.0.2.1"}}}, "version 4"},
		{"hosts entries for an older stage1", "", []types.Annotation{v3}, RunConfig{DNS: DNSConfig{Hosts: []string{"192.0.2.1=db"}}}, "version 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A Run that is not refused chdirs into the pod; the test's
			// directory comes back at the end either way.
			if wd, err := os.Getwd(); err == nil {
				t.Chdir(wd)
			}
			p, podsDir := preparedPod(t, tc.flavour, stage1Image(t, tc.s1...))
			err := Run(p, tc.cfg)
			if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), tc.mention) {
				t.Fatalf("Run: %v, want invalid naming %q", err, tc.mention)
			}
			if got, err := Get(podsDir, p.UUID); err != nil || got.State != Preparing {
				t.Fatalf("after a refused Run the pod is %v (%v), want still preparing", got, err)
			}
		})
	}
}

// Run needs the pod held, and a pod that Prepare completed.
func TestRunNeedsAPreparedPodHeld(t *testing.T) {
	p, podsDir := preparedPod(t, "nspawn", stage1Image(t))
	seen, err := Get(podsDir, p.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if err := Run(seen, RunConfig{}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("Run without the lock: %v, want invalid", err)
	}
	empty, _ := newPreparingPod(t) // never prepared: no record
	if err := Run(empty, RunConfig{}); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), empty.UUID) {
		t.Errorf("Run of a pod never prepared: %v", err)
	}
	if got, _ := Get(filepath.Dir(filepath.Dir(empty.Path())), empty.UUID); got == nil || got.State != Preparing {
		t.Errorf("the unprepared pod moved: %v", got)
	}
}

// Past its checks Run moves the pod to run, writes the DNS files its stage1
// reads and the start time, and execs the entrypoint with the lock. When
// the entrypoint is missing, or cannot be started, Run says so.
func TestRunStartsStage1(t *testing.T) {
	t.Run("no run entrypoint", func(t *testing.T) {
		s1 := stage1Image(t)
		s1.Annotations = nil
		p, podsDir := preparedPod(t, "", s1)
		if err := Run(p, RunConfig{}); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), contract.Run.Annotation()) {
			t.Fatalf("Run: %v, want the run entrypoint not found", err)
		}
		if got, _ := Get(podsDir, p.UUID); got == nil || got.State != Running {
			t.Errorf("the pod is %v, want running (it is held by this process)", got)
		}
	})
	t.Run("entrypoint cannot start", func(t *testing.T) {
		// Run chdirs into the pod before exec; the test's own directory
		// comes back at the end.
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		t.Chdir(wd)
		p, podsDir := preparedPod(t, "", stage1Image(t, types.Annotation{Name: contract.AnnotationInterfaceVersion, Value: "4"}))
		err = Run(p, RunConfig{DNS: DNSConfig{Servers: []string{"192.0.2.53"}, Hosts: []string{"192.0.2.9=db"}}})
		// The stage1 tree has no /run: exec fails and Run returns.
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "starting stage1") {
			t.Fatalf("Run: %v", err)
		}
		run, err := Get(podsDir, p.UUID)
		if err != nil || run.State != Running {
			t.Fatalf("the pod is %v (%v), want running", run, err)
		}
		s1, err := Stage1Of(run)
		if err != nil {
			t.Fatal(err)
		}
		resolv, err := os.ReadFile(filepath.Join(s1.Rootfs, contract.Stage1ResolvConf))
		if err != nil || !strings.Contains(string(resolv), "nameserver 192.0.2.53\n") {
			t.Errorf("%s: %q %v", contract.Stage1ResolvConf, resolv, err)
		}
		hosts, err := os.ReadFile(filepath.Join(s1.Rootfs, contract.Stage1Hosts))
		if err != nil || !strings.Contains(string(hosts), "192.0.2.9\tdb\n") {
			t.Errorf("%s: %q %v", contract.Stage1Hosts, hosts, err)
		}
		rec, err := run.record()
		if err != nil || rec.StartedAt.IsZero() {
			t.Errorf("start time not recorded: %+v %v", rec, err)
		}
		if cwd, _ := os.Getwd(); cwd != run.Path() {
			t.Errorf("Run did not start stage1 in the pod directory: %s", cwd)
		}
	})
}
