package contract

import "path/filepath"

// The kvm flavour's settings, which the stage1 interface's run flags do not
// carry: stage0 hands them to the run entrypoint in its environment, and a
// stage1 that is not orbit's kvm flavour ignores them.
const (
	// KVMAccelEnv is the accelerator for the pod's VM: auto (or empty),
	// kvm or tcg.
	KVMAccelEnv = "ORBIT_KVM_ACCEL"
	// KVMKernelEnv is the guest kernel to boot: the user's own, or the
	// one stage0 found (the small kernel beside the orbit binary, which
	// stage1, running from the store, cannot find itself), whose kind
	// KVMKernelKindEnv then gives.
	KVMKernelEnv     = "ORBIT_KVM_KERNEL"
	KVMKernelKindEnv = "ORBIT_KVM_KERNEL_KIND"
)

// KVMAccelerators are the values KVMAccelEnv takes.
func KVMAccelerators() []string { return []string{"auto", "kvm", "tcg"} }

// KVMBootFile is where the kvm flavour's run entrypoint records what the
// pod's VM boots (a KVMBoot, as JSON), before it starts the VM; orbit
// status shows it. It is written on the host by the run entrypoint, never
// by the guest.
func KVMBootFile(dir string) string { return filepath.Join(dir, "kvm-boot.json") }

// KVMBoot is what a kvm pod's VM boots: the guest kernel (its kind: small,
// packaged or user; its release; its path; how many modules the initramfs
// carries for it) and the accelerator it runs under (kvm or tcg).
type KVMBoot struct {
	KernelKind    string `json:"kernelKind"`
	KernelVersion string `json:"kernelVersion"`
	KernelPath    string `json:"kernelPath"`
	Modules       int    `json:"modules,omitempty"`
	Accel         string `json:"accel"`
}

// QEMUBinary is the hypervisor the kvm flavour runs, from Debian's
// QEMUPackage.
const (
	QEMUBinary  = "qemu-system-x86_64"
	QEMUPackage = "qemu-system-x86"
)
