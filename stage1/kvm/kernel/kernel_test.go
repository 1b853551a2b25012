package kernel

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// fakeModules writes a modules directory shaped like Debian's.
func fakeModules(t *testing.T, dir string) {
	writeFile(t, filepath.Join(dir, "modules.dep"), strings.Join([]string{
		"kernel/drivers/virtio/virtio_ring.ko:",
		"kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko",
		"kernel/drivers/virtio/virtio_mmio.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
		"kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
		"kernel/drivers/char/hw_random/virtio-rng.ko.xz: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
		"kernel/net/core/failover.ko:",
		"kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko",
		"kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
		"kernel/net/9p/9pnet.ko:",
		"kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
		"kernel/fs/netfs/netfs.ko:",
		"kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko",
		"kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko",
		"kernel/fs/nfs/nfs.ko: kernel/fs/netfs/netfs.ko",
	}, "\n")+"\n")
	writeFile(t, filepath.Join(dir, "modules.builtin"), "kernel/fs/overlayfs/overlay.ko\n")
}

func TestResolveModulesOrdersDependenciesFirst(t *testing.T) {
	dir := t.TempDir()
	fakeModules(t, dir)
	got, err := ResolveModules(dir, GuestModules())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range got {
		if !strings.HasPrefix(p, dir+"/kernel/") {
			t.Errorf("%s is not under %s", p, dir)
		}
		names = append(names, nameOf(p))
	}
	want := []string{"virtio_ring", "virtio", "virtio_mmio", "virtio_console", "virtio_rng",
		"failover", "net_failover", "virtio_net", "9pnet", "9pnet_virtio", "netfs", "fscache", "9p"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("load order\n got %v\nwant %v", names, want)
	}
}

func TestResolveModulesRefusesAModuleTheKernelLacks(t *testing.T) {
	dir := t.TempDir()
	fakeModules(t, dir)
	_, err := ResolveModules(dir, []string{"virtio_net", "virtiofs"})
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "virtiofs") {
		t.Fatalf("got %v, want not found naming virtiofs", err)
	}
}

func TestResolveModulesRefusesPathsOutOfTheDirectory(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "modules.dep"), "../../etc/virtio_mmio.ko:\n")
	if _, err := ResolveModules(dir, []string{"virtio_mmio"}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("got %v, want invalid", err)
	}
}

// bzImage writes a file with a boot-protocol header naming release.
func bzImage(t *testing.T, path, release string) {
	t.Helper()
	img := make([]byte, 0x400)
	copy(img[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(img[0x20e:], 0x100) // the string at 0x300
	copy(img[0x300:], release+" (builder@example) #1 SMP\x00")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestImageVersion(t *testing.T) {
	dir := t.TempDir()
	bz := filepath.Join(dir, "vmlinuz")
	bzImage(t, bz, "6.1.0-57-amd64")
	if v, err := ImageVersion(bz); err != nil || v != "6.1.0-57-amd64" {
		t.Errorf("bzImage: %q, %v", v, err)
	}
	elf := filepath.Join(dir, "vmlinux")
	// The banner straddles the reader's 1 MiB chunks.
	content := strings.Repeat("\x7fELF", (1<<20)/4-2) + "Linux version 6.1.192 (root@host) (gcc) #1\x00"
	writeFile(t, elf, content)
	if v, err := ImageVersion(elf); err != nil || v != "6.1.192" {
		t.Errorf("vmlinux: %q, %v", v, err)
	}
	none := filepath.Join(dir, "none")
	writeFile(t, none, "not a kernel")
	if v, err := ImageVersion(none); err != nil || v != UnknownVersion {
		t.Errorf("no banner: %q, %v", v, err)
	}
	if st, err := os.Stat("/boot/vmlinuz-6.1.0-57-amd64"); err == nil && st.Mode().IsRegular() {
		if v, err := ImageVersion("/boot/vmlinuz-6.1.0-57-amd64"); err != nil || v != "6.1.0-57-amd64" {
			t.Errorf("Debian's kernel: %q, %v", v, err)
		}
	}
}

func TestFinderSearchOrder(t *testing.T) {
	root := t.TempDir()
	f := Finder{
		SmallDirs:  []string{filepath.Join(root, "installed"), filepath.Join(root, "tree")},
		BootDir:    filepath.Join(root, "boot"),
		ModulesDir: filepath.Join(root, "modules"),
	}
	if _, err := f.Find(""); !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "make kvm-kernel") || !strings.Contains(err.Error(), "linux-image-amd64") {
		t.Fatalf("nothing installed: got %v", err)
	}

	// Packaged kernels: the newest with modules wins.
	bzImage(t, filepath.Join(f.BootDir, "vmlinuz-6.1.0-9-amd64"), "6.1.0-9-amd64")
	bzImage(t, filepath.Join(f.BootDir, "vmlinuz-6.1.0-57-amd64"), "6.1.0-57-amd64")
	bzImage(t, filepath.Join(f.BootDir, "vmlinuz-6.2.0-1-amd64"), "6.2.0-1-amd64") // no modules
	fakeModules(t, filepath.Join(f.ModulesDir, "6.1.0-9-amd64"))
	fakeModules(t, filepath.Join(f.ModulesDir, "6.1.0-57-amd64"))
	k, err := f.Find("")
	if err != nil {
		t.Fatal(err)
	}
	if k.Kind != Packaged || k.Version != "6.1.0-57-amd64" || len(k.Modules) != 13 ||
		!strings.HasPrefix(k.Modules[0], filepath.Join(f.ModulesDir, "6.1.0-57-amd64")) {
		t.Fatalf("packaged: %+v", k)
	}
	if !k.ACPI {
		t.Errorf("packaged kernel without a configuration: ACPI off")
	}
	writeFile(t, filepath.Join(f.BootDir, "config-6.1.0-57-amd64"), "CONFIG_64BIT=y\n# CONFIG_ACPI is not set\n")
	if k, _ = f.Find(""); k.ACPI {
		t.Errorf("packaged kernel configured without ACPI: ACPI on")
	}
	writeFile(t, filepath.Join(f.BootDir, "config-6.1.0-57-amd64"), "CONFIG_64BIT=y\nCONFIG_ACPI=y\nCONFIG_HZ_250=y\nCONFIG_HZ=250\n")
	if k, _ = f.Find(""); !k.ACPI || k.HZ != 250 {
		t.Errorf("packaged kernel configured with ACPI and HZ 250: %+v", k)
	}
	if args := k.tcgArgs(2599998); !reflect.DeepEqual(args, []string{"tsc=reliable", "tsc_early_khz=2599998", "noapictimer", "lpj=10399992"}) {
		t.Errorf("TCG arguments: %v", args)
	}
	if d := k.Describe(); !strings.Contains(d, "packaged kernel 6.1.0-57-amd64") || !strings.Contains(d, "13 modules") {
		t.Errorf("Describe: %q", d)
	}

	// The small kernel, in the later directory, then the earlier.
	writeFile(t, filepath.Join(root, "tree", "vmlinux"), "Linux version 6.1.192 (x) #1")
	if k, err = f.Find(""); err != nil || k.Kind != Small || k.Path != filepath.Join(root, "tree", "vmlinux") || len(k.Modules) != 0 || k.ACPI || k.HZ != 0 {
		t.Fatalf("small in tree: %+v, %v", k, err)
	}
	if args := k.tcgArgs(1000); len(args) != 3 {
		t.Errorf("TCG arguments without HZ: %v", args)
	}
	writeFile(t, filepath.Join(root, "tree", "vmlinux.config"), "CONFIG_ACPI=y\n")
	if k, err = f.Find(""); err != nil || !k.ACPI {
		t.Fatalf("small kernel configured with ACPI: %+v, %v", k, err)
	}
	// A user pointing at the build cache's image: its "config" says it
	// has no ACPI.
	writeFile(t, filepath.Join(root, "cache", "vmlinux"), "Linux version 6.1.192 (x) #1")
	writeFile(t, filepath.Join(root, "cache", "config"), "# CONFIG_ACPI is not set\nCONFIG_HZ=100\n")
	if k, err := f.Find(filepath.Join(root, "cache", "vmlinux")); err != nil || k.ACPI || k.HZ != 100 {
		t.Fatalf("the cache's small kernel named by the user: %+v, %v", k, err)
	}
	writeFile(t, filepath.Join(root, "installed", "vmlinux"), "Linux version 6.1.193 (x) #1")
	if k, err = f.Find(""); err != nil || k.Kind != Small || k.Version != "6.1.193" {
		t.Fatalf("small installed: %+v, %v", k, err)
	}

	// A user's kernel wins over everything, with the modules of its release.
	if k, err = f.Find(filepath.Join(f.BootDir, "vmlinuz-6.1.0-9-amd64")); err != nil || k.Kind != User || k.Version != "6.1.0-9-amd64" || len(k.Modules) != 13 {
		t.Fatalf("user: %+v, %v", k, err)
	}
	if k, err = f.Find(filepath.Join(f.BootDir, "vmlinuz-6.2.0-1-amd64")); err != nil || k.Kind != User || len(k.Modules) != 0 {
		t.Fatalf("user without modules: %+v, %v", k, err)
	}
	if _, err = f.Find(filepath.Join(root, "missing")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("missing user kernel: %v", err)
	}
	if _, err = f.Find(root); !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("a directory as kernel: %v", err)
	}
}

func TestHostTSCkHz(t *testing.T) {
	dir := t.TempDir()
	sysfs, cpuinfo := filepath.Join(dir, "tsc_freq_khz"), filepath.Join(dir, "cpuinfo")
	writeFile(t, cpuinfo, "processor\t: 0\nmodel name\t: x\ncpu MHz\t\t: 2599.998\n")
	if khz, err := hostTSCkHz(sysfs, cpuinfo); err != nil || khz != 2599998 {
		t.Errorf("from cpuinfo: %d, %v", khz, err)
	}
	writeFile(t, sysfs, "3000000\n")
	if khz, err := hostTSCkHz(sysfs, cpuinfo); err != nil || khz != 3000000 {
		t.Errorf("from sysfs: %d, %v", khz, err)
	}
	writeFile(t, cpuinfo, "processor\t: 0\n")
	if _, err := hostTSCkHz(filepath.Join(dir, "none"), cpuinfo); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("no frequency: %v", err)
	}
	args, err := TCGArgs()
	if err != nil {
		t.Skipf("this host does not say its TSC frequency: %v", err)
	}
	if len(args) != 2 || args[0] != "tsc=reliable" || !strings.HasPrefix(args[1], "tsc_early_khz=") {
		t.Errorf("TCGArgs: %v", args)
	}
}

func TestLoadModulesInOrder(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "load-order")
	if err := loadModules(list, nil); err != nil {
		t.Fatalf("no list is no modules: %v", err)
	}
	writeFile(t, filepath.Join(dir, "a.ko"), "a")
	writeFile(t, filepath.Join(dir, "b.ko"), "b")
	writeFile(t, list, "b.ko\n\na.ko\n")
	var loaded []string
	err := loadModules(list, func(f *os.File) error {
		loaded = append(loaded, filepath.Base(f.Name()))
		if len(loaded) == 2 {
			return unix.EEXIST // built in already: fine
		}
		return nil
	})
	if err != nil || !reflect.DeepEqual(loaded, []string{"b.ko", "a.ko"}) {
		t.Fatalf("loaded %v, %v", loaded, err)
	}
	err = loadModules(list, func(*os.File) error { return unix.ENOEXEC })
	if err == nil || !strings.Contains(err.Error(), "b.ko") {
		t.Fatalf("a failing module: %v", err)
	}
	writeFile(t, list, "c.ko\n")
	if err := loadModules(list, func(*os.File) error { return nil }); err == nil {
		t.Fatal("a missing module loaded")
	}
}

func TestFinderForSearchesBesideTheBinary(t *testing.T) {
	f := FinderFor("/opt/orbit/bin/orbit")
	want := []string{"/opt/orbit/lib/orbit/kvm", "/opt/orbit/bin/kvm", "/usr/local/lib/orbit/kvm", "/usr/lib/orbit/kvm", CacheDir + "/current"}
	var got []string
	for _, d := range f.SmallDirs {
		got = append(got, filepath.Clean(d))
	}
	if !reflect.DeepEqual(got, want) || f.BootDir != "/boot" || f.ModulesDir != "/lib/modules" {
		t.Fatalf("FinderFor: %+v", f)
	}
	if f := FinderFor(""); len(f.SmallDirs) != 3 {
		t.Fatalf("FinderFor without a binary: %v", f.SmallDirs)
	}
}
