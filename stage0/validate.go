package stage0

import (
	"fmt"
	"os"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/appc/spec/schema/types/resource"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/builtin"
	"github.com/orbit-containers/orbit/stage1/network"
	"github.com/orbit-containers/orbit/stage2"
)

// What stage0 refuses before a pod is made, so that nothing stage1 would
// refuse later (or, worse, silently ignore) reaches it. Flavour 0 means a
// stage1 image that is not one of orbit's own: only what every stage1
// would refuse is checked then.

// MaxPodManifestSize caps a pod manifest given by the user, like an image
// manifest: every later list and status reads it.
const MaxPodManifestSize = 4 << 20

// The accepted ranges of the resource limits, inclusive.
var (
	minMemory = resource.NewQuantity(4<<20, resource.BinarySI) // 4Mi: less cannot start an app
	maxMemory = resource.NewQuantity(1<<60, resource.BinarySI) // 1Ei
	minCPU    = resource.NewMilliQuantity(1, resource.DecimalSI)
	maxCPU    = resource.NewQuantity(1_000_000, resource.DecimalSI)
)

// MemoryForm and CPUForm describe the accepted values, for error messages.
const (
	MemoryForm = "want a size in bytes with an optional suffix (k, M, G, T, Ki, Mi, Gi, Ti) from 4Mi to 1Ei, e.g. 512M"
	CPUForm    = "want a number of CPUs, or thousandths of one with m, from 1m to 1000000, e.g. 500m or 2"
)

// ParseMemoryLimit reads a memory limit as the resource/memory isolator
// holds it, refusing values outside the accepted range: zero, negative,
// too small to start an app, or too large to be a limit.
func ParseMemoryLimit(s string) (resource.Quantity, error) {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return q, fmt.Errorf("%q: %s: %w", s, MemoryForm, errdefs.ErrInvalid)
	}
	return q, checkMemory(q)
}

// ParseCPULimit reads a CPU limit as the resource/cpu isolator holds it.
func ParseCPULimit(s string) (resource.Quantity, error) {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return q, fmt.Errorf("%q: %s: %w", s, CPUForm, errdefs.ErrInvalid)
	}
	return q, checkCPU(q)
}

func checkMemory(q resource.Quantity) error {
	if q.Cmp(*minMemory) < 0 || q.Cmp(*maxMemory) > 0 {
		return fmt.Errorf("%q: %s: %w", q.String(), MemoryForm, errdefs.ErrInvalid)
	}
	return nil
}

func checkCPU(q resource.Quantity) error {
	if q.Cmp(*minCPU) < 0 || q.Cmp(*maxCPU) > 0 {
		return fmt.Errorf("%q: %s: %w", q.String(), CPUForm, errdefs.ErrInvalid)
	}
	return nil
}

// CheckCapabilities refuses names that are not Linux capabilities. Names
// are accepted with or without CAP_, in any case, as stage2 reads them.
func CheckCapabilities(names []string) error {
	_, err := stage2.CapabilitiesFromSets(names, nil)
	return err
}

// CheckHostname refuses what is not an RFC 1123 host name that the kernel
// takes: labels of letters, digits and inner hyphens, 1 to 63 characters,
// separated by dots, 64 characters in all at most (HOST_NAME_MAX).
func CheckHostname(s string) error {
	bad := func(why string) error {
		return fmt.Errorf("--hostname=%q: %s; want an RFC 1123 host name (letters, digits, inner hyphens; dot-separated labels; at most 64 characters): %w", s, why, errdefs.ErrInvalid)
	}
	if s == "" {
		return bad("empty")
	}
	if len(s) > 64 {
		return bad("too long")
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return bad("empty or too long label")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return bad("a label starts or ends with a hyphen")
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return bad(fmt.Sprintf("character %q", c))
			}
		}
	}
	return nil
}

// CheckNet refuses --net values the pod's stage1 cannot honour: every
// value is a network name, optionally with ":CNI_ARGS", given once, and
// "host" and "none" stand alone; the fly flavour runs pods in the host's
// network only, as rkt's did.
func CheckNet(nets []string, flavour builtin.Flavour) error {
	reqs, err := network.ParseRequests(nets)
	if err != nil {
		return err
	}
	if flavour == builtin.Fly && len(reqs) > 0 && !network.IsHost(reqs) {
		return fmt.Errorf("--net=%q: the fly flavour runs pods in the host's network only; want --net=host or no --net: %w", strings.Join(nets, ","), errdefs.ErrInvalid)
	}
	if flavour == builtin.KVM && network.IsHost(reqs) {
		return fmt.Errorf("--net=host: a kvm pod is a VM with its own kernel and network stack, it cannot share the host's network; use --net=default or --net=none: %w", errdefs.ErrInvalid)
	}
	return nil
}

// CheckNetworks is CheckNet, and for orbit's own flavours also finds every
// requested network's definition and plugins (see network.Config.Resolve),
// so an unknown name, a malformed net.d file or a missing plugin is
// refused before anything is fetched or a pod made. No --net means the
// flavour's default network: nspawn's is rkt's "default".
func CheckNetworks(nets []string, flavour builtin.Flavour, cfg network.Config, forwardsPorts bool) error {
	if err := CheckNet(nets, flavour); err != nil {
		return err
	}
	if flavour != builtin.Nspawn && flavour != builtin.KVM {
		return nil
	}
	reqs, _ := network.ParseRequests(nets)
	if len(reqs) == 0 {
		reqs = []network.Request{{Name: network.Default}}
	}
	if network.IsHost(reqs) {
		return nil
	}
	_, err := cfg.Resolve(reqs, forwardsPorts)
	return err
}

// HostNetwork reports whether a pod run with these --net values under the
// flavour shares the host's network.
func HostNetwork(nets []string, flavour builtin.Flavour) bool {
	reqs, err := network.ParseRequests(nets)
	if err != nil {
		return false
	}
	return network.IsHost(reqs) || (len(reqs) == 0 && flavour == builtin.Fly)
}

// Check refuses a run configuration the pod's stage1 would refuse.
func (cfg RunConfig) Check(flavour builtin.Flavour) error {
	if cfg.Hostname != "" {
		if err := CheckHostname(cfg.Hostname); err != nil {
			return err
		}
	}
	if err := CheckIPC(cfg.IPC, flavour); err != nil {
		return err
	}
	return CheckNetworks(cfg.Net, flavour, network.Config{LocalConfig: cfg.LocalConfig, ExtraPluginPath: os.Getenv("CNI_PATH")}, false)
}

// CheckIPC refuses an --ipc mode the flavour cannot give: fly always
// leaves the apps in the host's IPC namespace, and the stage1 interface
// has no flag to ask a stage1 that is not orbit's. nspawn gives either;
// a kvm pod's apps always have the VM's own.
func CheckIPC(mode string, flavour builtin.Flavour) error {
	switch mode {
	case "", "auto":
		return nil
	case "private", "parent":
	default:
		return fmt.Errorf("--ipc=%s: want auto, private or parent: %w", mode, errdefs.ErrInvalid)
	}
	switch {
	case flavour == builtin.Fly && mode == "private":
		return fmt.Errorf("--ipc=private: the fly flavour runs apps in the host's IPC namespace; use --ipc=auto or the nspawn flavour: %w", errdefs.ErrInvalid)
	case flavour == builtin.KVM && mode == "private":
		return nil // a VM has an IPC namespace of its own
	case flavour == builtin.KVM:
		return fmt.Errorf("--ipc=parent: the kvm flavour runs apps in a virtual machine, which cannot share the host's IPC namespace; use --ipc=auto: %w", errdefs.ErrInvalid)
	case flavour == 0:
		return fmt.Errorf("--ipc=%s: the stage1 interface has no IPC flag, so only orbit's own flavours honour --ipc; use --ipc=auto: %w", mode, errdefs.ErrInvalid)
	}
	return nil
}

// ValidatePodManifest refuses a pod manifest that stage1 would refuse or
// misread: no apps, more apps than the flavour runs, mounts of volumes the
// pod does not have, unknown capabilities and out-of-range resource
// limits. Apps whose image is not known yet are checked as far as the
// manifest goes.
func ValidatePodManifest(pm *schema.PodManifest, flavour builtin.Flavour) error {
	if len(pm.Apps) == 0 && !Mutable(pm) {
		return fmt.Errorf("pod manifest has no apps; a pod needs at least one: %w", errdefs.ErrInvalid)
	}
	if flavour == builtin.Fly && len(pm.Apps) > 1 {
		return fmt.Errorf("the fly flavour runs exactly one app; this pod has %d: %w", len(pm.Apps), errdefs.ErrInvalid)
	}
	volumes := map[types.ACName]bool{}
	for _, v := range pm.Volumes {
		volumes[v.Name] = true
	}
	for _, ra := range pm.Apps {
		for _, m := range ra.Mounts {
			if !volumes[m.Volume] && m.AppVolume == nil {
				return fmt.Errorf("app %s: mount on %s names volume %q, which the pod does not have: %w", ra.Name, m.Path, m.Volume, errdefs.ErrInvalid)
			}
		}
		if ra.App != nil {
			if err := CheckIsolators(ra.App.Isolators); err != nil {
				return fmt.Errorf("app %s: %w", ra.Name, err)
			}
		}
	}
	return nil
}

// CheckIsolators refuses isolators that stage1 would refuse or misread.
func CheckIsolators(isos types.Isolators) error {
	for _, iso := range isos {
		var err error
		switch v := iso.Value().(type) {
		case *types.ResourceMemory:
			if l := v.Limit(); l != nil {
				err = checkMemory(*l)
			}
		case *types.ResourceCPU:
			if l := v.Limit(); l != nil {
				err = checkCPU(*l)
			}
		case *types.LinuxCapabilitiesRetainSet:
			err = CheckCapabilities(capNames(v.Set()))
		case *types.LinuxCapabilitiesRevokeSet:
			err = CheckCapabilities(capNames(v.Set()))
		}
		if err != nil {
			return fmt.Errorf("isolator %s: %w", iso.Name, err)
		}
	}
	return nil
}

func capNames(set []types.LinuxCapability) []string {
	out := make([]string, len(set))
	for i, c := range set {
		out[i] = string(c)
	}
	return out
}

// flavourOf is the built-in flavour a pod record names; 0 for another
// stage1.
func flavourOf(name string) builtin.Flavour {
	fl, _ := builtin.Parse(name)
	return fl
}
