package kvm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/kvm/initramfs"
	"github.com/orbit-containers/orbit/stage1/kvm/kernel"
	"github.com/orbit-containers/orbit/stage1/pod"
	"github.com/orbit-containers/orbit/stage1/supervisor"
)

// Sizing the VM.
const (
	// memoryOverhead is added to the apps' memory limits: the guest
	// kernel, the supervisor and the page cache of the shared files.
	memoryOverhead = 192 << 20
	// defaultMemory is the VM's memory when no app has a limit. Memory a
	// guest does not touch is never allocated on the host.
	defaultMemory = 512 << 20
)

// vmSize is the VM's memory and vCPUs.
type vmSize struct {
	memoryMiB int64
	cpus      int
}

// sizeOf sizes the VM from the apps' limits: their memory limits plus an
// overhead (each app is still limited inside the guest by its cgroup),
// and enough vCPUs for their CPU limits, rounded up; one vCPU when none
// has a limit. There are never more vCPUs than host CPUs.
func sizeOf(cfg *supervisor.Config) vmSize {
	var mem, milli int64
	allMem := true
	for _, a := range cfg.Apps {
		if a.Limits.MemoryBytes != nil {
			mem += *a.Limits.MemoryBytes
		} else {
			allMem = false
		}
		if a.Limits.CPUMilli != nil {
			milli += *a.Limits.CPUMilli
		}
	}
	s := vmSize{memoryMiB: defaultMemory >> 20, cpus: 1}
	if allMem && len(cfg.Apps) > 0 {
		s.memoryMiB = (mem + memoryOverhead + (1<<20 - 1)) >> 20
	}
	if milli > 0 {
		s.cpus = int(min((milli+999)/1000, int64(runtime.NumCPU())))
	}
	return s
}

// args is QEMU's command line: a microvm with no firmware and no default
// devices, booting the kernel and initramfs directly, with one
// virtio-serial port per entry of ports (descriptors 3 and up, in order),
// the console to a log file in the pod directory, the stage1 rootfs and
// the other shares over virtio-9p, and the pod's NIC, if any.
func (v *vm) args(cmdline string, ports []string) []string {
	return v.argsFor(v.pod.Dir, v.pod.Stage1Rootfs(), cmdline, ports)
}

// argsFor is args for a pod directory and its stage1 rootfs.
func (v *vm) argsFor(podDir, rootfs, cmdline string, ports []string) []string {
	machine := "microvm,pit=on,pic=on,rtc=on,acpi=" + onOff(v.boot.acpi)
	if !v.debug {
		// With --debug the kernel's messages from the first on go to a
		// serial port, the console log.
		machine += ",isa-serial=off"
	}
	a := []string{
		"-M", machine,
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-accel", v.accel, "-cpu", cpuModel(v.accel),
		"-m", strconv.FormatInt(v.size.memoryMiB, 10) + "M",
		"-smp", strconv.Itoa(v.size.cpus),
		"-kernel", v.boot.kernel, "-initrd", v.boot.initrd,
		"-append", cmdline,
		"-device", "virtio-serial-device,max_ports=8",
		"-chardev", "file,id=console,path=" + qemuEscape(filepath.Join(podDir, consoleLog)),
	}
	if v.debug {
		a = append(a, "-serial", "chardev:console")
	} else {
		a = append(a, "-device", "virtconsole,chardev=console")
	}
	for i, name := range ports {
		id := "port" + strconv.Itoa(i)
		a = append(a, "-chardev", "socket,id="+id+",fd="+strconv.Itoa(3+i),
			"-device", "virtserialport,chardev="+id+",name="+name)
	}
	a = append(a, fsdev("root", rootfs, supervisor.GuestRootTag, false)...)
	for i, s := range v.shares {
		a = append(a, fsdev("share"+strconv.Itoa(i), s.host, s.Tag, s.ReadOnly)...)
	}
	if v.nic != nil {
		a = append(a, "-netdev", "tap,id=net0,fd="+strconv.Itoa(3+len(ports)),
			"-device", "virtio-net-device,netdev=net0,mac="+v.nic.guest.MAC)
	}
	return a
}

// fsdev shares a host directory over virtio-9p. passthrough keeps owners
// and modes as the apps set them (QEMU runs as root); multidevs=remap keeps
// inode numbers unique across the mounts below the directory.
func fsdev(id, path, tag string, readOnly bool) []string {
	opts := "local,id=" + id + ",path=" + qemuEscape(path) + ",security_model=passthrough,multidevs=remap"
	if readOnly {
		opts += ",readonly=on"
	}
	return []string{"-fsdev", opts, "-device", "virtio-9p-device,fsdev=" + id + ",mount_tag=" + tag}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// qemuEscape doubles the commas QEMU's option syntax splits on.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

func cpuModel(accel string) string {
	if accel == "kvm" {
		return "host"
	}
	return "max"
}

// boot is what the VM boots.
type boot struct {
	kernel, initrd string
	// cacheDir is the flavour's cache, cacheKey the initramfs's name in
	// it (which says what it holds).
	cacheDir, cacheKey string
	acpi               bool
	tcgArgs            []string
	describe           string
	kern               *kernel.Kernel
}

// cmdline is the kernel command line: the console on the first
// virtio-serial port, quiet, a triple-fault reboot (the guest's power off,
// see supervisor.GuestMain) and an immediate one on panic. Under TCG the
// TSC's frequency is given, which spares the guest a long calibration.
func (b *boot) cmdline(probe, debug bool) string {
	c := []string{"console=hvc0", "quiet"}
	if debug {
		c = []string{"console=ttyS0"}
	}
	c = append(c, "reboot=t", "panic=-1", "rcupdate.rcu_expedited=1")
	c = append(c, b.tcgArgs...)
	if probe {
		c = append(c, supervisor.GuestProbeArg)
	}
	return strings.Join(c, " ")
}

// cacheDir is where the flavour caches initramfs images and probe results:
// cas/kvm in the data directory the pod is in (pods/run/<uuid>).
func cacheDir(p *pod.Pod) (string, error) {
	pods := filepath.Dir(filepath.Dir(p.Dir))
	if filepath.Base(pods) != "pods" {
		return "", fmt.Errorf("pod directory %s is not in a data directory's pods: %w", p.Dir, errdefs.ErrInvalid)
	}
	dir := filepath.Join(filepath.Dir(pods), "cas", CacheDirName)
	return dir, os.MkdirAll(dir, 0o700)
}

// CacheDirName is the flavour's cache directory in the store (cas/):
// initramfs archives and probe results, each named by what it was made
// from.
const CacheDirName = "kvm"

// CollectCache removes from the store directory casDir's kvm cache the
// initramfs archives and probe results not used since cutoff, except the
// archives a pod still links (see initramfs.Collect). It returns the
// paths removed, relative to casDir.
func CollectCache(casDir string, cutoff time.Time) ([]string, error) {
	names, err := initramfs.Collect(filepath.Join(casDir, CacheDirName), cutoff, AccelCachePrefix)
	for i, n := range names {
		names[i] = filepath.Join(CacheDirName, n)
	}
	return names, err
}

// findKernel finds the kernel stage0 chose: path is one it found, of the
// kind given, or the user's. The small kernel is looked for where stage0
// found it, so it is taken for what it is (no ACPI, no modules).
func findKernel(path string, kind kernel.Kind) (*kernel.Kernel, error) {
	if path == "" || kind == kernel.User || kind == "" {
		return kernel.Find(path)
	}
	if kind == kernel.Small {
		f := kernel.Finder{SmallDirs: []string{filepath.Dir(path)}}
		if k, err := f.Find(""); err == nil && k.Kind == kernel.Small && k.Path == filepath.Clean(path) {
			return k, nil
		}
	}
	k, err := kernel.Find(path)
	if err != nil {
		return nil, err
	}
	k.Kind = kind
	return k, nil
}

// prepareBoot finds the kernel and builds (or finds cached) the initramfs
// with the supervisor from the stage1 image as /init.
func prepareBoot(p *pod.Pod) (*boot, error) {
	k, err := findKernel(os.Getenv(contract.KVMKernelEnv), kernel.Kind(os.Getenv(contract.KVMKernelKindEnv)))
	if err != nil {
		return nil, err
	}
	init, err := os.ReadFile(filepath.Join(p.Stage1Rootfs(), "kvm", "supervisor"))
	if err != nil {
		return nil, fmt.Errorf("the stage1 image's supervisor: %w", err)
	}
	dir, err := cacheDir(p)
	if err != nil {
		return nil, err
	}
	// The pod boots its own link to the cached archive: the cache's gc
	// keeps an archive a pod links, and cannot take it from a pod that
	// runs. When the gc removed it between the two, it is built again.
	own := filepath.Join(p.Dir, initrdFile)
	var cached string
	for try := 0; ; try++ {
		if cached, err = initramfs.Cached(dir, init, k); err != nil {
			return nil, fmt.Errorf("building the initramfs: %w", err)
		}
		err = initramfs.Link(cached, own)
		if err == nil {
			break
		}
		if !errors.Is(err, errdefs.ErrNotFound) || try == 2 {
			return nil, err
		}
	}
	return &boot{kernel: k.Path, initrd: own, cacheDir: dir, cacheKey: filepath.Base(cached), acpi: k.ACPI, describe: k.Describe(), kern: k}, nil
}
