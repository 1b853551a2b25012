package kernel

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// SmallKernelName is the small kernel's file name in each directory Find
// searches.
const SmallKernelName = "vmlinux"

// CacheDir is where `make kvm-kernel` keeps its builds; CacheDir/current
// is the latest.
const CacheDir = "/var/cache/orbit/kvm-kernel"

// GuestModules are the modules a guest of the packaged kernel needs, by
// module name: the virtio-mmio transport, the console and control ports,
// entropy, the network, the 9p share of the pod's filesystems and overlay.
// What they depend on comes from the kernel's modules.dep.
func GuestModules() []string {
	return []string{
		"virtio_mmio", "virtio_console", "virtio_rng", "virtio_net",
		"9pnet_virtio", "9p", "overlay",
	}
}

// Finder is Find's search, with its places spelt out (tests point them at
// temporary directories).
type Finder struct {
	// SmallDirs are searched in order for SmallKernelName.
	SmallDirs []string
	// BootDir holds packaged kernels as vmlinuz-<release>.
	BootDir string
	// ModulesDir holds <release>/modules.dep for each packaged kernel.
	ModulesDir string
}

// DefaultFinder is FinderFor the running program.
func DefaultFinder() Finder {
	exe, err := os.Executable()
	if err == nil {
		exe, err = filepath.EvalSymlinks(exe)
	}
	if err != nil {
		exe = ""
	}
	return FinderFor(exe)
}

// FinderFor searches for the small kernel beside the orbit binary exe, as
// installed (<bindir>/../lib/orbit/kvm) and as built in the tree
// (<bindir>/kvm), then in the installed locations /usr/local/lib/orbit/kvm
// and /usr/lib/orbit/kvm, then in the build cache's latest build; then for
// Debian's packaged kernels in /boot. An empty exe skips the first two.
// The kvm flavour finds its kernel in orbit's own process (stage0): a
// stage1 runs from a copy of the binary in the store, beside nothing.
func FinderFor(exe string) Finder {
	var dirs []string
	if exe != "" {
		bin := filepath.Dir(exe)
		dirs = append(dirs, filepath.Join(bin, "..", "lib", "orbit", "kvm"), filepath.Join(bin, "kvm"))
	}
	dirs = append(dirs, "/usr/local/lib/orbit/kvm", "/usr/lib/orbit/kvm", filepath.Join(CacheDir, "current"))
	return Finder{SmallDirs: dirs, BootDir: "/boot", ModulesDir: "/lib/modules"}
}

// Find returns the kernel to boot guests with: userPath when it is not
// empty, else the small kernel when it is built or installed, else the
// newest packaged kernel whose modules are installed.
func Find(userPath string) (*Kernel, error) {
	return DefaultFinder().Find(userPath)
}

// Find is the package's Find over f's places.
func (f Finder) Find(userPath string) (*Kernel, error) {
	if userPath != "" {
		return f.user(userPath)
	}
	if k, err := f.small(); k != nil || err != nil {
		return k, err
	}
	if k, err := f.packaged(); k != nil || err != nil {
		return k, err
	}
	return nil, fmt.Errorf("no guest kernel: build the small one (make kvm-kernel) or install linux-image-amd64: %w", errdefs.ErrNotFound)
}

func (f Finder) user(path string) (*Kernel, error) {
	path, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("guest kernel %s: %w", path, errdefs.ErrNotFound)
	} else if err != nil {
		return nil, fmt.Errorf("guest kernel: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("guest kernel %s is not a regular file: %w", path, errdefs.ErrInvalid)
	}
	version, err := ImageVersion(path)
	if err != nil {
		return nil, fmt.Errorf("guest kernel %s: %w", path, err)
	}
	k := &Kernel{Path: path, Kind: User, Version: version}
	f.configure(k)
	// A kernel with modules installed for its release gets those it needs;
	// one without has them built in, or the guest will say what it lacks.
	if version != UnknownVersion {
		dir := filepath.Join(f.ModulesDir, version)
		if _, err := os.Stat(filepath.Join(dir, "modules.dep")); err == nil {
			if k.Modules, err = ResolveModules(dir, GuestModules()); err != nil {
				return nil, fmt.Errorf("guest kernel %s: %w", path, err)
			}
		}
	}
	return k, nil
}

func (f Finder) small() (*Kernel, error) {
	for _, dir := range f.SmallDirs {
		path := filepath.Join(dir, SmallKernelName)
		st, err := os.Stat(path)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		path = filepath.Clean(path)
		version, err := ImageVersion(path)
		if err != nil {
			return nil, fmt.Errorf("small guest kernel %s: %w", path, err)
		}
		k := &Kernel{Path: path, Kind: Small, Version: version}
		f.configure(k)
		return k, nil
	}
	return nil, nil
}

// packaged returns the newest /boot/vmlinuz-<release> whose modules are
// installed, or nil when there is none.
func (f Finder) packaged() (*Kernel, error) {
	images, err := filepath.Glob(filepath.Join(f.BootDir, "vmlinuz-*"))
	if err != nil {
		return nil, err
	}
	sort.Slice(images, func(i, j int) bool {
		return compareReleases(releaseOf(images[i]), releaseOf(images[j])) > 0
	})
	for _, image := range images {
		release := releaseOf(image)
		dir := filepath.Join(f.ModulesDir, release)
		if _, err := os.Stat(filepath.Join(dir, "modules.dep")); err != nil {
			continue
		}
		modules, err := ResolveModules(dir, GuestModules())
		if err != nil {
			return nil, fmt.Errorf("packaged kernel %s: %w", image, err)
		}
		k := &Kernel{Path: image, Kind: Packaged, Version: release, Modules: modules}
		f.configure(k)
		return k, nil
	}
	return nil, nil
}

func releaseOf(image string) string {
	return strings.TrimPrefix(filepath.Base(image), "vmlinuz-")
}

// compareReleases orders kernel releases by their numbers (6.1.0-57 after
// 6.1.0-9), then as strings.
func compareReleases(a, b string) int {
	as, bs := splitNumbers(a), splitNumbers(b)
	for i := 0; i < len(as) && i < len(bs); i++ {
		if as[i] != bs[i] {
			if as[i] < bs[i] {
				return -1
			}
			return 1
		}
	}
	if len(as) != len(bs) {
		if len(as) < len(bs) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func splitNumbers(s string) []int {
	var nums []int
	n, in := 0, false
	for _, r := range s {
		if r >= '0' && r <= '9' {
			n, in = n*10+int(r-'0'), true
			continue
		}
		if in {
			nums = append(nums, n)
		}
		n, in = 0, false
	}
	if in {
		nums = append(nums, n)
	}
	return nums
}

// configure sets what k's configuration says (ACPI, HZ), read from
// <image>.config (as `make kvm-kernel` leaves it beside its copy), the
// image's directory's "config" (its build cache's), else
// <BootDir>/config-<release>. Without either, ACPI is on for all but the
// small kernel and HZ unknown.
func (f Finder) configure(k *Kernel) {
	configs := []string{k.Path + ".config", filepath.Join(filepath.Dir(k.Path), "config")}
	if k.Version != UnknownVersion {
		configs = append(configs, filepath.Join(f.BootDir, "config-"+k.Version))
	}
	for _, c := range configs {
		data, err := os.ReadFile(c)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if line == "CONFIG_ACPI=y" {
				k.ACPI = true
			} else if v, ok := strings.CutPrefix(line, "CONFIG_HZ="); ok {
				k.HZ, _ = strconv.Atoi(v)
			}
		}
		return
	}
	k.ACPI = k.Kind != Small
}
