package stage0

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/orbit-containers/orbit/stage1/builtin"
)

func TestRealPath(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		filepath.Join(dir, "link"):                 filepath.Join(dir, "real"),
		filepath.Join(dir, "link", "not", "yet"):   filepath.Join(dir, "real", "not", "yet"),
		filepath.Join(dir, "link", "..", "link"):   filepath.Join(dir, "real"),
		filepath.Join(dir, "missing", "link", "x"): filepath.Join(dir, "missing", "link", "x"),
	} {
		got, err := RealPath(in)
		if err != nil || got != want {
			t.Errorf("RealPath(%s) = %s, %v; want %s", in, got, err, want)
		}
	}
	wd, _ := os.Getwd()
	if got, _ := RealPath("rel"); !filepath.IsAbs(got) || filepath.Base(got) != "rel" {
		t.Errorf("RealPath(rel) = %s (cwd %s)", got, wd)
	}
}

func TestLimitsAndNames(t *testing.T) {
	for _, s := range []string{"4Mi", "512M", "1G", "1Ei"} {
		if _, err := ParseMemoryLimit(s); err != nil {
			t.Errorf("--memory=%s refused: %v", s, err)
		}
	}
	for _, s := range []string{"", "0", "-1", "1", "4M", "2Ei", "99999999999999999999G", "lots"} {
		if _, err := ParseMemoryLimit(s); err == nil {
			t.Errorf("--memory=%q accepted", s)
		}
	}
	for _, s := range []string{"1m", "500m", "2", "0.5", "1000000"} {
		if _, err := ParseCPULimit(s); err != nil {
			t.Errorf("--cpu=%s refused: %v", s, err)
		}
	}
	for _, s := range []string{"", "0", "-1", "0.0001", "1000001", "99999999999999999999"} {
		if _, err := ParseCPULimit(s); err == nil {
			t.Errorf("--cpu=%q accepted", s)
		}
	}
	for _, s := range []string{"a", "orbit-1", "a.b-c.d", "A1"} {
		if err := CheckHostname(s); err != nil {
			t.Errorf("hostname %q refused: %v", s, err)
		}
	}
	for _, s := range []string{"", "-a", "a-", "a..b", "a_b", "a b", ".a"} {
		if err := CheckHostname(s); err == nil {
			t.Errorf("hostname %q accepted", s)
		}
	}
	if err := CheckNet([]string{"host"}, builtin.Nspawn); err != nil {
		t.Errorf("--net=host refused: %v", err)
	}
	if err := CheckNet([]string{"default"}, builtin.Fly); err == nil {
		t.Error("--net=default accepted for fly")
	}
	if err := CheckNet([]string{"mynet:IP=10.1.1.1"}, 0); err != nil {
		t.Errorf("--net=mynet:... refused for another stage1: %v", err)
	}
	if err := CheckNet([]string{"default", "mynet:IP=10.1.1.1"}, builtin.Nspawn); err != nil {
		t.Errorf("two networks refused for nspawn: %v", err)
	}
	for _, bad := range [][]string{{"host", "default"}, {"none", "x"}, {"a", "a"}, {"host:IP=1.2.3.4"}, {"x:noequals"}} {
		if err := CheckNet(bad, builtin.Nspawn); err == nil {
			t.Errorf("--net=%v accepted", bad)
		}
	}
	if err := CheckCapabilities([]string{"CAP_CHOWN", "net_raw"}); err != nil {
		t.Errorf("known capabilities refused: %v", err)
	}
	if err := CheckCapabilities([]string{"CAP_BOGUS"}); err == nil {
		t.Error("CAP_BOGUS accepted")
	}
}

// --ipc: nspawn gives either mode, fly only the host's, another stage1
// only its own default.
func TestCheckIPC(t *testing.T) {
	for _, tc := range []struct {
		mode    string
		flavour builtin.Flavour
		ok      bool
	}{
		{"auto", builtin.Nspawn, true}, {"private", builtin.Nspawn, true}, {"parent", builtin.Nspawn, true},
		{"auto", builtin.Fly, true}, {"parent", builtin.Fly, true}, {"private", builtin.Fly, false},
		{"auto", 0, true}, {"parent", 0, false}, {"private", 0, false},
		{"sometimes", builtin.Nspawn, false},
	} {
		if err := CheckIPC(tc.mode, tc.flavour); (err == nil) != tc.ok {
			t.Errorf("--ipc=%s for flavour %v: %v", tc.mode, tc.flavour, err)
		}
	}
}
