package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// kvmConfig is the kvm flavour's configuration kind, kvm.d
// ({"rktKind":"kvm","rktVersion":"v1","accel":...,"kernel":...}), read from
// the system and then the local configuration directory, field by field,
// as paths.d and stage1.d are: the accelerator and the guest kernel when
// neither a flag nor the environment gives them.
type kvmConfig struct {
	Accel  string
	Kernel string
}

// kvmConfigKind is the kind's rktKind and directory (kvm.d).
const kvmConfigKind = "kvm"

// loadKVMConfig reads and checks kvm.d: accel is auto, kvm or tcg, kernel
// an absolute path to a file.
func (g *globalOptions) loadKVMConfig() (kvmConfig, error) {
	m, err := rktConfigFiles(g, kvmConfigKind, kvmConfigKind)
	if err != nil {
		return kvmConfig{}, err
	}
	c := kvmConfig{Accel: m["accel"], Kernel: m["kernel"]}
	if c.Accel != "" && !slices.Contains(contract.KVMAccelerators(), c.Accel) {
		return kvmConfig{}, fmt.Errorf("kvm.d configuration: accel %q: want auto, kvm or tcg: %w", c.Accel, errdefs.ErrInvalid)
	}
	if c.Kernel != "" {
		if !filepath.IsAbs(c.Kernel) {
			return kvmConfig{}, fmt.Errorf("kvm.d configuration: kernel %q: want an absolute path: %w", c.Kernel, errdefs.ErrInvalid)
		}
		if fi, err := os.Stat(c.Kernel); err != nil || !fi.Mode().IsRegular() {
			return kvmConfig{}, fmt.Errorf("kvm.d configuration: kernel %s: not a kernel image file: %w", c.Kernel, errdefs.ErrNotFound)
		}
	}
	return c, nil
}

// applyKVMConfig fills the kvm settings the flags leave unset from kvm.d,
// unless the environment sets them: a flag wins over the environment
// ($ORBIT_KVM_ACCEL, $ORBIT_KVM_KERNEL), which wins over the configuration.
func (r *stage1RunFlags) applyKVMConfig(g *globalOptions) error {
	c, err := g.loadKVMConfig()
	if err != nil {
		return err
	}
	if r.kvmAccel == "" && os.Getenv(contract.KVMAccelEnv) == "" {
		r.kvmAccel = c.Accel
	}
	if r.kvmKernel == "" && os.Getenv(contract.KVMKernelEnv) == "" {
		r.kvmKernel = c.Kernel
	}
	return nil
}
