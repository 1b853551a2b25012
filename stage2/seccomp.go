package stage2

import (
	"fmt"

	"github.com/elastic/go-seccomp-bpf/arch"
)

// DefaultSeccompRemoveSet returns the syscalls an app is denied when it asks
// for no filter of its own: rkt's default deny list (which is Docker's), plus
// the syscalls that reach the same kernel facilities by newer routes. It
// keeps an app from changing the host (clock, swap, kernel modules, reboot,
// kexec, accounting, quotas), from leaving its namespaces and root
// (mount(2) and the new mount API, pivot_root, setns, unshare), and from
// the interfaces most used to attack the kernel or other processes
// (ptrace, process_vm_*, bpf, perf_event_open, userfaultfd, keyrings, file
// handles, NUMA policy, obsolete syscalls).
//
// mount(2) is denied, as rkt denies it: apps in a pod get their volumes from
// stage1 and rarely mount anything themselves; one that must (a FUSE
// daemon, say) is given its own filter (and CAP_SYS_ADMIN) explicitly.
// Names unknown to the running architecture are skipped when the filter is
// built.
func DefaultSeccompRemoveSet() []string {
	return []string{
		// Kernel modules, kexec, reboot, swap.
		"create_module", "delete_module", "finit_module", "get_kernel_syms",
		"init_module", "query_module",
		"kexec_file_load", "kexec_load", "reboot",
		"swapoff", "swapon",
		// The host's clock.
		"adjtimex", "clock_adjtime", "clock_settime", "settimeofday", "stime",
		// Accounting and quotas.
		"acct", "quotactl", "quotactl_fd",
		// Mounts and namespaces.
		"mount", "umount", "umount2", "pivot_root",
		"fsconfig", "fsmount", "fsopen", "fspick", "mount_setattr", "move_mount", "open_tree",
		"setns", "unshare",
		// Kernel keyrings.
		"add_key", "keyctl", "request_key",
		// Tracing and inspecting other processes and the kernel.
		"ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
		"perf_event_open", "bpf", "lookup_dcookie", "userfaultfd",
		// File handles (open_by_handle_at escapes a chroot).
		"name_to_handle_at", "open_by_handle_at",
		// NUMA memory policy.
		"get_mempolicy", "mbind", "move_pages", "set_mempolicy",
		// Obsolete or raw hardware access.
		"_sysctl", "iopl", "ioperm", "nfsservctl", "sysfs", "uselib", "ustat",
		"vm86", "vm86old",
	}
}

// knownArches are the architectures whose syscall names a filter may use;
// a name unknown to all of them is a mistake, not a portability concern.
func knownArches() []*arch.Info {
	return []*arch.Info{arch.X86_64, arch.X32, arch.I386, arch.AARCH64, arch.ARM}
}

func (s *Seccomp) validate() error {
	if s.Mode != SeccompRetain && s.Mode != SeccompRemove {
		return fmt.Errorf("mode %q is neither %q nor %q", s.Mode, SeccompRetain, SeccompRemove)
	}
	if s.Errno < 0 || s.Errno > maxErrno {
		return fmt.Errorf("errno %d out of range", s.Errno)
	}
	hasExecve := false
	for _, name := range s.Syscalls {
		known := false
		for _, a := range knownArches() {
			if _, ok := a.SyscallNames[name]; ok {
				known = true
				break
			}
		}
		if !known {
			return fmt.Errorf("unknown syscall %q", name)
		}
		hasExecve = hasExecve || name == "execve"
	}
	if s.Mode == SeccompRetain && !hasExecve {
		// The filter is installed before the launcher's own execve of the
		// app; without it the app could never start.
		return fmt.Errorf("retain set without execve: the app could not be started")
	}
	return nil
}
