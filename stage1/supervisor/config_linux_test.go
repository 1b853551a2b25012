package supervisor

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/cgroup"
	"github.com/orbit-containers/orbit/stage2"
)

func TestWriteStatus(t *testing.T) {
	dir := t.TempDir()
	exited := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st := Status{ExitCode: 137, Signal: "SIGKILL", OOMKilled: true, StartedAt: exited.Add(-time.Minute), ExitedAt: exited}
	if err := writeStatus(dir, "web", st); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "web"))
	if err != nil || string(b) != "137" {
		t.Fatalf("status file %q, %v", b, err)
	}
	for _, f := range []string{"web", "web.json"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil || !fi.ModTime().Equal(exited) {
			t.Errorf("%s mtime %v (%v), want the exit time", f, fi.ModTime(), err)
		}
	}
	b, _ = os.ReadFile(filepath.Join(dir, "web.json"))
	var got Status
	if err := json.Unmarshal(b, &got); err != nil || got.ExitCode != 137 || !got.OOMKilled || got.Signal != "SIGKILL" || !got.ExitedAt.Equal(exited) {
		t.Errorf("json %s: %+v %v", b, got, err)
	}
	for _, k := range []string{`"exitCode"`, `"signal"`, `"oomKilled"`, `"startedAt"`, `"exitedAt"`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("json %s lacks %s", b, k)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("temp files left: %v", ents)
	}
}

func TestConfigValidate(t *testing.T) {
	mem := int64(1 << 20)
	app := func(name string) AppSpec {
		return AppSpec{App: stage2.App{Name: name, Root: "/r", Exec: []string{"/bin/true"}}}
	}
	for name, c := range map[string]Config{
		"no apps":        {},
		"duplicate":      {Apps: []AppSpec{app("a"), app("a")}},
		"bad name":       {Apps: []AppSpec{app("../a")}},
		"empty handler":  {Apps: []AppSpec{{App: app("a").App, PreStart: [][]string{{}}}}},
		"limit, no cg":   {Apps: []AppSpec{{App: app("a").App, Limits: cgroup.Limits{MemoryBytes: &mem}}}},
		"interactive 2":  {Apps: []AppSpec{app("a"), app("b")}, Interactive: true},
		"negative grace": {Apps: []AppSpec{app("a")}, StopGracePeriod: -1},
	} {
		if err := c.validate(); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	ok := Config{Apps: []AppSpec{app("a"), app("b")}, CgroupParent: "orbit/x"}
	if err := ok.validate(); err != nil {
		t.Error(err)
	}
}

func TestReadConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	os.WriteFile(good, []byte(`{"apps":[{"app":{"name":"a","root":"/r","exec":["/bin/true"]},"preStart":[["/bin/pre"]],"limits":{"memoryBytes":1048576}}],"cgroupParent":"orbit/u","statusDir":"/s","stopGracePeriod":1000000000}`), 0o644)
	cfg, err := readConfig(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Apps) != 1 || cfg.Apps[0].PreStart[0][0] != "/bin/pre" || *cfg.Apps[0].Limits.MemoryBytes != 1<<20 || cfg.StopGracePeriod != time.Second || cfg.CgroupParent != "orbit/u" {
		t.Errorf("decoded %+v", cfg)
	}
	for name, text := range map[string]string{
		"unknown.json":  `{"apps":[],"bogus":1}`,
		"trailing.json": `{"apps":[]} {}`,
		"broken.json":   `{"apps":`,
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o644)
		if _, err := readConfig(p); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

func TestInAncestor(t *testing.T) {
	for _, c := range []struct {
		self, root, parent string
		want               bool
	}{
		{"/", "/", "orbit/u", true},
		{"/orbit", "/", "orbit/u", true},
		{"/orbit/u", "/", "orbit/u", true},
		{"/user.slice", "/", "orbit/u", false},
		{"/orbitx", "/", "orbit/u", false},
		{"/machine/pod", "/machine/pod", "orbit/u", true},
		{"/machine/pod/orbit", "/machine/pod", "orbit/u", true},
		{"/machine/other", "/machine/pod", "orbit/u", false},
	} {
		if got := inAncestor(c.self, c.root, c.parent); got != c.want {
			t.Errorf("inAncestor(%q, %q, %q) = %v", c.self, c.root, c.parent, got)
		}
	}
	if p, ok := unifiedPath(strings.NewReader("4:memory:/x\n0::/a/b\n")); !ok || p != "/a/b" {
		t.Errorf("unifiedPath = %q %v", p, ok)
	}
}
