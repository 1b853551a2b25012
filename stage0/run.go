package stage0

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/builtin"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/kvm/kernel"
)

// RunConfig is how stage1 is asked to run a pod.
type RunConfig struct {
	Debug       bool
	Interactive bool
	Hostname    string
	// Net is the --net value given to stage1; empty means not given.
	Net         []string
	LocalConfig string
	DNS         DNSConfig
	// IPC is rkt's --ipc: "auto" (or empty), "private" or "parent".
	IPC                            string
	MDSToken                       string
	DisableCapabilitiesRestriction bool
	DisablePaths                   bool
	DisableSeccomp                 bool
	// Mutable runs a sandbox, whose apps change while it runs.
	Mutable bool
	// KVM are the kvm flavour's settings (see contract.KVMAccelEnv).
	KVM KVMConfig

	dnsConfMode  string // worked out from DNS by Run
	privateUsers string // the pod's user namespace range, from its record
}

// KVMConfig is what the kvm flavour takes besides the run flags: the
// accelerator ("" for auto) and the guest kernel ("" for the one stage1
// finds) with its kind.
type KVMConfig struct {
	Accel, Kernel, KernelKind string
}

// findKernel finds the guest kernel here, where orbit's own binary is
// (the small kernel may be beside it), unless one is given: the user's.
func (k *KVMConfig) findKernel() error {
	exe, err := os.Executable()
	if err != nil {
		exe = ""
	}
	user := k.Kernel
	if user == "" {
		user = os.Getenv(contract.KVMKernelEnv)
	}
	kern, err := kernel.FinderFor(exe).Find(user)
	if err != nil {
		return err
	}
	k.Kernel, k.KernelKind = kern.Path, string(kern.Kind)
	return nil
}

// CheckQEMU refuses a kvm pod on a host without QEMU, before a pod is
// made.
func CheckQEMU() error {
	if _, err := exec.LookPath(contract.QEMUBinary); err != nil {
		return fmt.Errorf("the kvm flavour needs QEMU (%s), which is not installed; on Debian install the package %s: %w", contract.QEMUBinary, contract.QEMUPackage, errdefs.ErrNotFound)
	}
	return nil
}

// Check refuses, before a pod is made, a kvm run that could not start: no
// QEMU, or no guest kernel to boot.
func (k KVMConfig) Check() error {
	if err := CheckQEMU(); err != nil {
		return err
	}
	return k.findKernel()
}

// env sets the kvm settings that are given in an environment, replacing
// those there (the variables may also be set by the user, as settings).
func (k KVMConfig) env(env []string) []string {
	set := map[string]string{}
	for _, s := range []struct{ name, value string }{{contract.KVMAccelEnv, k.Accel}, {contract.KVMKernelEnv, k.Kernel}, {contract.KVMKernelKindEnv, k.KernelKind}} {
		if s.value != "" {
			set[s.name] = s.value
		}
	}
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := set[name]; !ok {
			out = append(out, kv)
		}
	}
	for name, value := range set {
		out = append(out, name+"="+value)
	}
	return out
}

// Stage1 is a pod's stage1 image manifest and where its rootfs is.
type Stage1 struct {
	Manifest *schema.ImageManifest
	Rootfs   string
}

// Stage1Of reads the stage1 manifest of a pod.
func Stage1Of(p *Pod) (*Stage1, error) {
	data, err := os.ReadFile(contract.Stage1Manifest(p.Path()))
	if err != nil {
		return nil, fmt.Errorf("pod %s: reading its stage1 manifest: %w", p.UUID, err)
	}
	var m schema.ImageManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("pod %s: stage1 manifest: %w: %w", p.UUID, err, errdefs.ErrInvalid)
	}
	return &Stage1{Manifest: &m, Rootfs: contract.Stage1Rootfs(p.Path())}, nil
}

// Entrypoint returns the host path of a stage1 entrypoint, named by its
// annotation in the stage1 image manifest.
func (s *Stage1) Entrypoint(e contract.Entrypoint) (string, error) {
	v, ok := s.Manifest.Annotations.Get(e.Annotation())
	if !ok || v == "" {
		return "", fmt.Errorf("stage1 image %s has no %q entrypoint: %w", s.Manifest.Name, e.Annotation(), errdefs.ErrNotFound)
	}
	rel := filepath.Clean("/" + v)
	return filepath.Join(s.Rootfs, rel), nil
}

// InterfaceVersion is the stage1 interface version the image implements.
func (s *Stage1) InterfaceVersion() int {
	return contract.ParseInterfaceVersion(s.Manifest.Annotations.Get(contract.AnnotationInterfaceVersion))
}

// runArgs builds the run entrypoint's arguments for the stage1's interface
// version.
func (s *Stage1) runArgs(uuid string, cfg RunConfig) []string {
	o := contract.RunOptions{
		Debug:                          cfg.Debug,
		Net:                            strings.Join(cfg.Net, ","),
		MDSToken:                       cfg.MDSToken,
		Interactive:                    cfg.Interactive,
		LocalConfig:                    cfg.LocalConfig,
		Hostname:                       cfg.Hostname,
		DisableCapabilitiesRestriction: cfg.DisableCapabilitiesRestriction,
		DisablePaths:                   cfg.DisablePaths,
		DisableSeccomp:                 cfg.DisableSeccomp,
		DNSConfMode:                    cfg.dnsConfMode,
		Mutable:                        cfg.Mutable,
		PrivateUsers:                   cfg.privateUsers,
	}
	if cfg.IPC != "auto" {
		o.IPC = cfg.IPC // refused by Check for a stage1 that is not orbit's
	}
	return o.Args(s.InterfaceVersion(), uuid)
}

// Run starts a pod that this process holds locked in prepare or prepared:
// it moves the pod to run, mounts its root filesystems and execs the stage1
// run entrypoint with the lock inherited (contract.LockFDEnv). It returns
// only on failure; stage1's exit status becomes this process's. Nothing in
// it waits, so it takes no context: the running pod is stopped by signals
// to this process, which reach stage1 once it is exec'd.
func Run(p *Pod, cfg RunConfig) error {
	entry, args, err := startStage1(p, &cfg)
	if err != nil {
		return err
	}
	fd, err := p.LockFd()
	if err != nil {
		return err
	}
	// The entrypoint is exec'd after the chdir into the pod.
	if err := os.Chdir(p.Path()); err != nil {
		return err
	}
	argv := append([]string{entry}, args...)
	env := append(cfg.KVM.env(os.Environ()), contract.LockFDEnvVar(fd))
	err = unix.Exec(entry, argv, env)
	return fmt.Errorf("starting stage1 %s: %w", entry, err)
}

// startStage1 does what Run does up to the exec: it checks the pod, moves
// it to run, mounts it, and returns the run entrypoint (absolute) and its
// arguments.
func startStage1(p *Pod, cfg *RunConfig) (string, []string, error) {
	if p.lock == nil {
		return "", nil, fmt.Errorf("pod %s: lock not held: %w", p.UUID, errdefs.ErrInvalid)
	}
	// Refuse what this stage1 cannot do before the pod is started.
	if rec, err := p.record(); err != nil {
		return "", nil, fmt.Errorf("pod %s: %w", p.UUID, err)
	} else if err := cfg.Check(flavourOf(rec.Stage1Flavour)); err != nil {
		return "", nil, err
	} else if flavourOf(rec.Stage1Flavour) == builtin.KVM {
		if err := cfg.KVM.findKernel(); err != nil {
			return "", nil, err
		}
	}
	if s1, err := Stage1Of(p); err != nil {
		return "", nil, err
	} else if mode, _, _, err := cfg.DNS.dnsConfMode(); err != nil {
		return "", nil, err
	} else if need := contract.RunFlagSince(contract.FlagDNSConfMode); mode != "" && s1.InterfaceVersion() < need {
		return "", nil, fmt.Errorf("stage1 image %s implements stage1 interface version %d; --dns and --hosts-entry need version %d: %w", s1.Manifest.Name, s1.InterfaceVersion(), need, errdefs.ErrInvalid)
	} else if cfg.Mutable {
		for _, e := range contract.AppEntrypoints() {
			if _, err := s1.Entrypoint(e); err != nil {
				return "", nil, fmt.Errorf("stage1 image %s cannot run a sandbox: %w", s1.Manifest.Name, err)
			}
		}
	}
	if err := p.ToRun(); err != nil {
		return "", nil, err
	}
	rec, err := p.record()
	if err != nil {
		return "", nil, fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	if err := mountPod(p, rec); err != nil {
		return "", nil, fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	s1, err := Stage1Of(p)
	if err != nil {
		return "", nil, err
	}
	entry, err := s1.Entrypoint(contract.Run)
	if err != nil {
		return "", nil, err
	}
	if cfg.dnsConfMode, err = writeDNSFiles(s1.Rootfs, cfg.DNS); err != nil {
		return "", nil, err
	}
	cfg.privateUsers = rec.PrivateUsers
	rec.StartedAt = time.Now().UTC()
	if err := p.writeRecord(rec); err != nil {
		return "", nil, err
	}
	if entry, err = filepath.Abs(entry); err != nil {
		return "", nil, err
	}
	return entry, s1.runArgs(p.UUID, *cfg), nil
}
