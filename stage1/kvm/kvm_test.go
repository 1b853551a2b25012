package kvm

import (
	"strings"
	"testing"

	"github.com/orbit-containers/orbit/stage1/cgroup"
	"github.com/orbit-containers/orbit/stage1/supervisor"
)

func TestSizeOf(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	for _, tc := range []struct {
		name   string
		limits []cgroup.Limits
		mem    int64
		cpus   int
	}{
		{"no limits", []cgroup.Limits{{}}, defaultMemory >> 20, 1},
		{"memory", []cgroup.Limits{{MemoryBytes: i64(64 << 20)}}, 64 + memoryOverhead>>20, 1},
		{"one app without", []cgroup.Limits{{MemoryBytes: i64(64 << 20)}, {}}, defaultMemory >> 20, 1},
		{"two apps", []cgroup.Limits{{MemoryBytes: i64(64 << 20)}, {MemoryBytes: i64(32 << 20)}}, 96 + memoryOverhead>>20, 1},
		{"cpu rounded up", []cgroup.Limits{{CPUMilli: i64(1001)}}, defaultMemory >> 20, 2},
		{"cpu capped", []cgroup.Limits{{CPUMilli: i64(1 << 40)}}, defaultMemory >> 20, -1},
	} {
		cfg := &supervisor.Config{}
		for _, l := range tc.limits {
			cfg.Apps = append(cfg.Apps, supervisor.AppSpec{Limits: l})
		}
		s := sizeOf(cfg)
		if s.memoryMiB != tc.mem {
			t.Errorf("%s: memory %d MiB, want %d", tc.name, s.memoryMiB, tc.mem)
		}
		if tc.cpus > 0 && s.cpus != tc.cpus {
			t.Errorf("%s: %d vCPUs, want %d", tc.name, s.cpus, tc.cpus)
		}
		if s.cpus < 1 || s.cpus > 1<<10 {
			t.Errorf("%s: %d vCPUs", tc.name, s.cpus)
		}
	}
}

func TestReadExitTrustsOnlyABoundedStatus(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"exit 3\n", 3},
		{"ok\nexit 0\n", 0},
		{"exit 256\n", -1},
		{"exit -1\n", -1},
		{"exit ../../etc\n", -1},
		{strings.Repeat("x", 10000) + "\nexit 9\n", -1},
		{"exit 4\nexit 5\n", 4},
		{"", -1},
	} {
		if got := readExit(strings.NewReader(tc.in)); got != tc.want {
			t.Errorf("%.20q: %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestQEMUArgs(t *testing.T) {
	v := &vm{
		qemu: "qemu", accel: accelTCG, size: vmSize{memoryMiB: 256, cpus: 2},
		boot:   &boot{kernel: "/k", initrd: "/i", acpi: false},
		shares: []share{{GuestShare: supervisor.GuestShare{Tag: "orbit-share0", Target: "/v", ReadOnly: true}, host: "/host,dir"}},
	}
	args := strings.Join(v.argsFor("/pod", "/pod/stage1/rootfs", "console=hvc0", []string{supervisor.GuestPortControl}), " ")
	for _, want := range []string{
		"-M microvm,pit=on,pic=on,rtc=on,acpi=off,isa-serial=off", "-nodefaults", "-no-reboot", "-accel tcg",
		"-m 256M", "-smp 2", "-kernel /k", "-initrd /i",
		"socket,id=port0,fd=3", "name=" + supervisor.GuestPortControl,
		"path=/host,,dir,security_model=passthrough,multidevs=remap,readonly=on", "mount_tag=orbit-share0",
		"mount_tag=" + supervisor.GuestRootTag,
	} {
		if !strings.Contains(args, want) {
			t.Errorf("QEMU's arguments lack %q:\n%s", want, args)
		}
	}
}
