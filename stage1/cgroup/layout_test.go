package cgroup

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// A Debian 9 style host: v1 only, cpu and cpuacct co-mounted, a named
// systemd hierarchy.
const mountinfoLegacy = `18 23 0:17 / /sys rw,nosuid,nodev,noexec,relatime shared:6 - sysfs sysfs rw
24 18 0:20 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
25 24 0:21 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
27 24 0:23 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpu,cpuacct
28 24 0:24 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory
29 24 0:25 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,pids
30 24 0:26 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,cpuset,clone_children
`

// A modern host: one cgroup2 mount.
const mountinfoUnified = `22 27 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`

// This machine: v1 controllers, each on its own, plus an empty cgroup2.
const mountinfoHybrid = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

func TestParseMountinfoLegacy(t *testing.T) {
	l := mustParse(t, mountinfoLegacy)
	if l.Mode != Legacy || l.Unified != nil {
		t.Fatalf("mode %v unified %v, want legacy without cgroup2", l.Mode, l.Unified)
	}
	if len(l.V1) != 5 {
		t.Fatalf("got %d v1 hierarchies, want 5", len(l.V1))
	}
	cpu, acct := l.v1For("cpu"), l.v1For("cpuacct")
	if cpu == nil || cpu != acct || cpu.Mountpoint != "/sys/fs/cgroup/cpu,cpuacct" {
		t.Errorf("cpu %+v cpuacct %+v: want one co-mounted hierarchy", cpu, acct)
	}
	if c := l.v1For("cpuset"); c == nil || !slices.Equal(c.Controllers, []string{"cpuset"}) {
		t.Errorf("cpuset hierarchy %+v: clone_children taken for a controller", c)
	}
	sd := l.V1[0]
	if sd.Name != "systemd" || len(sd.Controllers) != 0 || sd.Mountpoint != "/sys/fs/cgroup/systemd" {
		t.Errorf("named hierarchy %+v", sd)
	}
}

func TestParseMountinfoUnified(t *testing.T) {
	l := mustParse(t, mountinfoUnified)
	if l.Mode != Unified || len(l.V1) != 0 {
		t.Fatalf("mode %v with %d v1 hierarchies, want unified", l.Mode, len(l.V1))
	}
	if l.Unified.Mountpoint != "/sys/fs/cgroup" || l.Unified.Root != "/" {
		t.Errorf("unified %+v", l.Unified)
	}
}

func TestParseMountinfoHybrid(t *testing.T) {
	l := mustParse(t, mountinfoHybrid)
	if l.Mode != Hybrid {
		t.Fatalf("mode %v, want hybrid", l.Mode)
	}
	if l.Unified == nil || l.Unified.Mountpoint != "/sys/fs/cgroup/unified" {
		t.Fatalf("unified %+v", l.Unified)
	}
	for c, want := range map[string]string{"memory": "/sys/fs/cgroup/memory", "cpu": "/sys/fs/cgroup/cpu", "cpuacct": "/sys/fs/cgroup/cpuacct", "pids": "/sys/fs/cgroup/pids"} {
		if h := l.v1For(c); h == nil || h.Mountpoint != want {
			t.Errorf("%s: %+v, want %s", c, h, want)
		}
	}
	if l.v1For("hugetlb") != nil {
		t.Error("an unmounted controller was found")
	}
}

// In a container: the hierarchies show sub-trees, one is bind-mounted a
// second time, a name needs unescaping, and /sys/fs/cgroup was mounted over
// with a fresh cgroup2 that hides the earlier mounts.
func TestParseMountinfoContainer(t *testing.T) {
	text := `100 99 0:50 / / rw - overlay overlay rw
101 100 0:24 /machine.slice/pod /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
102 100 0:24 /machine.slice/pod /mnt/mem\040again rw - cgroup cgroup rw,memory
103 100 0:25 /machine.slice/pod /srv/my\040cgroups/pids rw - cgroup cgroup rw,pids
`
	l := mustParse(t, text)
	if l.Mode != Legacy || len(l.V1) != 2 {
		t.Fatalf("mode %v, %d hierarchies: want legacy with the duplicate dropped", l.Mode, len(l.V1))
	}
	if h := l.v1For("memory"); h.Root != "/machine.slice/pod" || h.Mountpoint != "/sys/fs/cgroup/memory" {
		t.Errorf("memory %+v", h)
	}
	if h := l.v1For("pids"); h.Mountpoint != "/srv/my cgroups/pids" {
		t.Errorf("pids mount point %q not unescaped", h.Mountpoint)
	}

	over := text + "104 100 0:60 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n105 104 0:61 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
	l = mustParse(t, over)
	if l.v1For("memory") == nil || l.v1For("memory").Mountpoint != "/mnt/mem again" {
		t.Errorf("memory %+v: the hidden mount should give way to the visible one", l.v1For("memory"))
	}
	if l.Mode != Hybrid || l.Unified == nil || l.Unified.Mountpoint != "/sys/fs/cgroup" {
		t.Errorf("mode %v unified %+v", l.Mode, l.Unified)
	}
}

// A mount whose source is empty (mount -t tmpfs "" dir) prints two spaces
// where the source goes; it must not hide the cgroups from the parser.
func TestParseMountinfoEmptySource(t *testing.T) {
	text := "50 31 0:90 / /tmp/scratch rw,relatime - tmpfs  rw\n" + mountinfoHybrid + "51 31 0:91 / /mnt/x rw - fuse.sshfs  rw,user_id=0\n"
	l := mustParse(t, text)
	if l.Mode != Hybrid || l.v1For("memory") == nil || l.Unified == nil {
		t.Fatalf("mode %v memory %+v unified %+v: cgroups lost by an empty source", l.Mode, l.v1For("memory"), l.Unified)
	}
}

func TestParseMountinfoErrors(t *testing.T) {
	if _, err := parseMountinfo(strings.NewReader("1 2 0:1 / / rw - ext4 /dev/sda rw\n")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("no cgroups: %v, want ErrNotFound", err)
	}
	if _, err := parseMountinfo(strings.NewReader("1 2 garbage\n")); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("garbage: %v, want ErrInvalid", err)
	}
}

func TestCleanPath(t *testing.T) {
	for _, bad := range []string{"", "/", "/orbit", "orbit/../etc", "orbit//x", "./orbit", "orbit/", "a/\nb"} {
		if _, err := cleanPath(bad); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("cleanPath(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if p, err := cleanPath("orbit/1234/app-1"); err != nil || p != "orbit/1234/app-1" {
		t.Errorf("good path: %q %v", p, err)
	}
}

func TestLimits(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	for _, bad := range []Limits{{MemoryBytes: i64(0)}, {CPUMilli: i64(-1)}, {CPUShares: u64(1)}, {CPUShares: u64(262145)}, {PidsMax: i64(0)}} {
		if err := bad.Validate(); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%+v: %v, want ErrInvalid", bad, err)
		}
	}
	if got := cfsQuota(500); got != 50000 {
		t.Errorf("quota for 500m = %d, want 50000", got)
	}
	if got := cfsQuota(1); got != minCFSQuota {
		t.Errorf("quota for 1m = %d, want the 1ms minimum", got)
	}
	for shares, want := range map[uint64]uint64{2: 1, 1024: 39, 262144: 10000} {
		if got := cpuWeight(shares); got != want {
			t.Errorf("cpuWeight(%d) = %d, want %d", shares, got, want)
		}
	}
	if got := (Limits{MemoryBytes: i64(1), CPUShares: u64(2), PidsMax: i64(3)}).controllers(); !slices.Equal(got, []string{"memory", "cpu", "pids"}) {
		t.Errorf("controllers %v", got)
	}
}

func mustParse(t *testing.T, text string) *Layout {
	t.Helper()
	l, err := parseMountinfo(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// systemd-nspawn mounts a container's cgroup2 tree before the sysfs it then
// moves it onto: mountinfo lists /sys/fs/cgroup (its parent the later /sys)
// first. It is visible; a sysfs stacked over /sys later would hide it.
func TestParseMountinfoMovedMount(t *testing.T) {
	text := `988 919 0:126 / / rw - overlay overlay rw
600 991 0:140 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw
991 988 0:107 / /sys ro - sysfs sysfs ro
`
	l := mustParse(t, text)
	if l.Mode != Unified || l.Unified == nil || l.Unified.Mountpoint != "/sys/fs/cgroup" {
		t.Fatalf("mode %v unified %+v: the moved cgroup2 mount was taken as hidden", l.Mode, l.Unified)
	}
	if _, err := parseMountinfo(strings.NewReader(text + "1200 991 0:150 / /sys ro - sysfs sysfs ro\n")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("a sysfs stacked over /sys hides the cgroup2 tree below the first: got %v", err)
	}
}
