package tests

import (
	"testing"

	"github.com/orbit-containers/orbit/stage1/kvm/initramfs"
	"github.com/orbit-containers/orbit/stage1/kvm/kernel"
)

// BenchmarkKVMKernelBoot times a guest's boot to exit under TCG, QEMU's
// start included: the small kernel (ns/op) against Debian's packaged one
// with its modules in the initramfs (packaged-ns/op), with the init of
// TestKVMKernelBootsAndRunsInit (load modules, find the control port,
// mount and use a 9p share, leave through isa-debug-exit).
func BenchmarkKVMKernelBoot(b *testing.B) {
	init := kvmkernelInit(b)
	side := func(kind kernel.Kind) benchSide {
		k := kvmkernelFind(b, kind)
		initrd, err := initramfs.Cached(b.TempDir(), init, k)
		if err != nil {
			b.Fatal(err)
		}
		return benchSide{name: string(kind), do: func(int) {
			if g := kvmkernelBoot(b, k, initrd, "bench"); g.code != kvmkernelOK {
				b.Fatalf("%s: guest exit code %d; console:\n%s", k.Describe(), g.code, g.output)
			}
		}}
	}
	benchCompare(b, nil, side(kernel.Small), side(kernel.Packaged))
}
