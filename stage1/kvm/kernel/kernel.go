// Package kernel finds the Linux kernel the kvm flavour boots its guests
// with, and the modules that kernel needs packed into the initramfs.
//
// Three kinds of kernel can boot a pod's VM:
//   - the small kernel orbit builds from Debian's linux-source package with
//     guest.config (`make kvm-kernel`): everything built in, PVH entry, no
//     modules, fast to boot;
//   - Debian's packaged kernel (linux-image-amd64): its virtio, 9p and
//     overlay modules travel in the initramfs and LoadModules loads them;
//   - a kernel the user names.
//
// Find chooses; LoadModules is the guest side, run by the supervisor as the
// VM's PID 1 before anything else.
package kernel

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Kind says where a kernel comes from.
type Kind string

const (
	// Small is orbit's own guest kernel, built by `make kvm-kernel`.
	Small Kind = "small"
	// Packaged is Debian's kernel image under /boot, with its modules.
	Packaged Kind = "packaged"
	// User is a kernel the user pointed orbit at.
	User Kind = "user"
)

// Kernel is a guest kernel and what it needs in the initramfs.
type Kernel struct {
	// Path is the kernel image QEMU boots (-kernel): an ELF vmlinux with a
	// PVH note or a bzImage.
	Path string
	Kind Kind
	// Version is the kernel's release (uname -r), read from the image;
	// "unknown" when the image does not say.
	Version string
	// Modules are host paths of the modules (.ko, .ko.xz, .ko.zst) the
	// guest loads, in load order: each after those it depends on. None
	// for the small kernel, which has everything built in.
	Modules []string
	// ACPI says whether QEMU's microvm should give the guest ACPI tables
	// (-M microvm,acpi=on). A guest with ACPI finds its virtio-mmio devices
	// there (Debian's kernel must: it cannot read them from the command
	// line); without, it reads them from the virtio_mmio.device= arguments
	// microvm appends only when ACPI is off (the small kernel, which has no
	// ACPI and boots faster for it). From the kernel's configuration when
	// orbit finds it (beside the image as <image>.config, or
	// /boot/config-<release>), else true for all but the small kernel.
	ACPI bool
	// HZ is the kernel's timer frequency (CONFIG_HZ) from the same
	// configuration, 0 when unknown.
	HZ int
}

// Describe says which kernel this is, for orbit to report.
func (k *Kernel) Describe() string {
	s := fmt.Sprintf("%s kernel %s (%s", k.Kind, k.Version, k.Path)
	if n := len(k.Modules); n > 0 {
		s += fmt.Sprintf(", %d modules", n)
	}
	return s + ")"
}

// Paths inside the initramfs that Build (package initramfs) writes and
// LoadModules reads.
const (
	// ModuleDir holds the guest's modules, decompressed, by file name.
	ModuleDir = "/lib/modules/orbit"
	// ModuleOrder lists the modules to load, one path (under ModuleDir) a
	// line, in order.
	ModuleOrder = "/lib/modules/orbit/load-order"
)

// ModuleName is the file name a host module has in ModuleDir: its base name
// without the compression suffix.
func ModuleName(hostPath string) string {
	base := filepath.Base(hostPath)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		if trimmed, ok := strings.CutSuffix(base, ".ko"+ext); ok {
			return trimmed + ".ko"
		}
	}
	return base
}
