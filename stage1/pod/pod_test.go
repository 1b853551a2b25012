package pod

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/stage2"
)

func testPod(t *testing.T, vols []types.Volume) *Pod {
	t.Helper()
	pm := schema.BlankPodManifest()
	pm.Volumes = vols
	return &Pod{Dir: t.TempDir(), UUID: "u", Manifest: pm}
}

func TestAppMounts(t *testing.T) {
	ro := true
	mode := "0700"
	uid, gid := 1000, 1000
	p := testPod(t, []types.Volume{
		{Name: "data", Kind: "host", Source: "/srv/data", ReadOnly: &ro},
		{Name: "scratch", Kind: "empty", Mode: &mode, UID: &uid, GID: &gid},
		{Name: "unused", Kind: "host", Source: "/nope"},
	})
	im := schema.BlankImageManifest()
	im.App = &types.App{MountPoints: []types.MountPoint{{Name: "data", Path: "/var/data"}, {Name: "scratch", Path: "/scratch"}}}
	ra := &schema.RuntimeApp{Name: "app", Mounts: []schema.Mount{{Volume: "scratch", Path: "/explicit"}}}
	mounts, err := p.AppMounts(ra, im)
	if err != nil {
		t.Fatal(err)
	}
	byTarget := map[string]AppMount{}
	for _, m := range mounts {
		byTarget[m.Target] = m
	}
	if m := byTarget["/var/data"]; m.Source != "/srv/data" || !m.ReadOnly {
		t.Errorf("host volume: %+v", m)
	}
	if m := byTarget["/explicit"]; m.Source != p.EmptyVolumeDir("scratch") {
		t.Errorf("explicit mount of the empty volume: %+v", m)
	}
	if _, ok := byTarget["/scratch"]; !ok {
		t.Errorf("mount point matched by name missing: %+v", mounts)
	}
	fi, err := os.Stat(p.EmptyVolumeDir("scratch"))
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("empty volume dir: %v %v", fi, err)
	}
	ra.Mounts = []schema.Mount{{Volume: "missing", Path: "/x"}}
	if _, err := p.AppMounts(ra, im); err == nil {
		t.Error("a mount of an undefined volume was accepted")
	}
}

func TestDNSMounts(t *testing.T) {
	p := testPod(t, nil)
	m, err := p.DNSMounts("resolv=stage0,hosts=host")
	if err != nil || len(m) != 2 {
		t.Fatalf("%v %v", m, err)
	}
	if m[0].Source != filepath.Join(p.Stage1Rootfs(), "etc/rkt-resolv.conf") || m[0].Target != "/etc/resolv.conf" {
		t.Errorf("resolv: %+v", m[0])
	}
	if m[1].Source != "/etc/hosts" || m[1].Target != "/etc/hosts" {
		t.Errorf("hosts: %+v", m[1])
	}
	if m, _ := p.DNSMounts("resolv=none,hosts=default"); len(m) != 0 {
		t.Errorf("none/default: %+v", m)
	}
	for _, bad := range []string{"resolv", "resolv=maybe", "dns=host"} {
		if _, err := p.DNSMounts(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func isolator(t *testing.T, name, value string) types.Isolator {
	t.Helper()
	var iso types.Isolator
	raw := json.RawMessage(value)
	data, _ := json.Marshal(map[string]any{"name": name, "value": raw})
	if err := json.Unmarshal(data, &iso); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return iso
}

func TestApplyIsolators(t *testing.T) {
	var app stage2.App
	lim, err := ApplyIsolators(&app, types.Isolators{
		isolator(t, "resource/memory", `{"limit":"64M"}`),
		isolator(t, "resource/cpu", `{"limit":"250m"}`),
		isolator(t, "os/linux/cpu-shares", `512`),
		isolator(t, "os/linux/oom-score-adj", `200`),
		isolator(t, "os/linux/no-new-privileges", `true`),
		isolator(t, "os/linux/capabilities-remove-set", `{"set":["CAP_CHOWN"]}`),
	}, Security{})
	if err != nil {
		t.Fatal(err)
	}
	if lim.MemoryBytes == nil || *lim.MemoryBytes != 64*1000*1000 || lim.CPUMilli == nil || *lim.CPUMilli != 250 || lim.CPUShares == nil || *lim.CPUShares != 512 {
		t.Errorf("limits %+v", lim)
	}
	if app.OOMScoreAdj == nil || *app.OOMScoreAdj != 200 || !app.NoNewPrivileges {
		t.Errorf("app %+v", app)
	}
	for _, c := range app.Capabilities.Retain {
		if c == "CAP_CHOWN" {
			t.Error("CAP_CHOWN kept despite the remove set")
		}
	}
	if app.Seccomp == nil || app.Seccomp.Mode != stage2.SeccompRemove || len(app.MaskedPaths) == 0 || len(app.ReadOnlyPaths) == 0 {
		t.Errorf("defaults not applied: %+v", app)
	}
	var open stage2.App
	if _, err := ApplyIsolators(&open, nil, Security{AllCapabilities: true, NoPathRestrictions: true, NoSeccomp: true}); err != nil {
		t.Fatal(err)
	}
	if open.Capabilities != nil || open.Seccomp != nil || len(open.MaskedPaths) != 0 {
		t.Errorf("insecure options left restrictions: %+v", open)
	}
}

func TestAppMountsShallowestFirst(t *testing.T) {
	p := testPod(t, []types.Volume{
		{Name: "dir1", Kind: "host", Source: "/a"},
		{Name: "deep", Kind: "host", Source: "/b"},
		{Name: "mid", Kind: "host", Source: "/c"},
	})
	im := schema.BlankImageManifest()
	im.App = &types.App{MountPoints: []types.MountPoint{{Name: "dir1", Path: "/dir1"}, {Name: "mid", Path: "/dir1/dir2"}}}
	ra := &schema.RuntimeApp{Name: "app", Mounts: []schema.Mount{{Volume: "deep", Path: "/dir1/dir2/dir3"}}}
	mounts, err := p.AppMounts(ra, im)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range mounts {
		got = append(got, m.Target)
	}
	if len(got) != 3 || got[0] != "/dir1" || got[1] != "/dir1/dir2" || got[2] != "/dir1/dir2/dir3" {
		t.Fatalf("mount order %v", got)
	}
}

func TestAppMountsVolumeReadOnlyWins(t *testing.T) {
	rw, ro := false, true
	p := testPod(t, []types.Volume{
		{Name: "rw", Kind: "host", Source: "/a", ReadOnly: &rw},
		{Name: "unset", Kind: "host", Source: "/b"},
		{Name: "ro", Kind: "host", Source: "/c", ReadOnly: &ro},
	})
	im := schema.BlankImageManifest()
	im.App = &types.App{MountPoints: []types.MountPoint{{Name: "rw", Path: "/rw", ReadOnly: true}, {Name: "unset", Path: "/unset", ReadOnly: true}, {Name: "ro", Path: "/ro"}}}
	mounts, err := p.AppMounts(&schema.RuntimeApp{Name: "app"}, im)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"/rw": false, "/unset": true, "/ro": true}
	for _, m := range mounts {
		if m.ReadOnly != want[m.Target] {
			t.Errorf("%s: readOnly %v, want %v", m.Target, m.ReadOnly, want[m.Target])
		}
	}
}
