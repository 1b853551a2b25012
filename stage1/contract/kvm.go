package contract

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
