package stage2

import (
	"encoding/binary"
	"strings"
	"testing"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// filterVM runs a seccomp filter in x/net/bpf's interpreter.
type filterVM struct {
	t    *testing.T
	vm   *bpf.VM
	arch *arch.Info
}

func newFilterVM(t *testing.T, s *Seccomp) *filterVM {
	t.Helper()
	raw, err := s.filterProgram()
	if err != nil {
		t.Fatalf("filterProgram: %v", err)
	}
	if raw == nil {
		return nil
	}
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("the filter holds instructions x/net/bpf cannot decode")
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatalf("NewVM: %v", err)
	}
	info, err := arch.GetInfo("")
	if err != nil {
		t.Fatal(err)
	}
	return &filterVM{t: t, vm: vm, arch: info}
}

// verdict runs the filter for syscall number nr made under audit arch a.
// The interpreter loads words big-endian, so seccomp_data is laid out so.
func (f *filterVM) verdict(nr uint32, a uint32) uint32 {
	f.t.Helper()
	data := make([]byte, 64)
	binary.BigEndian.PutUint32(data[0:], nr)
	binary.BigEndian.PutUint32(data[4:], a)
	v, err := f.vm.Run(data)
	if err != nil {
		f.t.Fatalf("run: %v", err)
	}
	return uint32(v)
}

func (f *filterVM) call(name string) uint32 {
	f.t.Helper()
	nr, ok := f.arch.SyscallNames[name]
	if !ok {
		f.t.Fatalf("no syscall %s on %s", name, f.arch.Name)
	}
	return f.verdict(uint32(nr), uint32(f.arch.ID))
}

const (
	allow = uint32(seccomp.ActionAllow)
	eperm = uint32(seccomp.ActionErrno) | uint32(unix.EPERM)
	enosy = uint32(seccomp.ActionErrno) | uint32(unix.ENOSYS)
)

func TestSeccompRemoveFilter(t *testing.T) {
	f := newFilterVM(t, &Seccomp{Mode: SeccompRemove, Syscalls: []string{"mkdirat", "ptrace", "ptrace", "vm86", "mkdir"}})
	for name, want := range map[string]uint32{"mkdirat": eperm, "ptrace": eperm, "read": allow, "execve": allow, "openat": allow} {
		if got := f.call(name); got != want {
			t.Errorf("%s: %#x, want %#x", name, got, want)
		}
	}
	// Syscalls under another ABI are refused, whatever their number.
	read := uint32(f.arch.SyscallNames["read"])
	foreign := arch.I386.ID
	if f.arch.ID == foreign {
		foreign = arch.X86_64.ID
	}
	if got := f.verdict(read, uint32(foreign)); got != enosy {
		t.Errorf("foreign arch: %#x, want ENOSYS", got)
	}
	if f.arch.ID == arch.X86_64.ID {
		if got := f.verdict(read|uint32(arch.X32.SeccompMask), uint32(f.arch.ID)); got != enosy {
			t.Errorf("x32 ABI: %#x, want ENOSYS", got)
		}
	}
}

func TestSeccompRetainFilter(t *testing.T) {
	f := newFilterVM(t, &Seccomp{Mode: SeccompRetain, Syscalls: []string{"execve", "read", "write", "exit_group"}, Errno: int(unix.EACCES)})
	deny := uint32(seccomp.ActionErrno) | uint32(unix.EACCES)
	for name, want := range map[string]uint32{"execve": allow, "read": allow, "write": allow, "exit_group": allow, "mkdirat": deny, "openat": deny} {
		if got := f.call(name); got != want {
			t.Errorf("%s: %#x, want %#x", name, got, want)
		}
	}
}

func TestSeccompDefaultRemoveSet(t *testing.T) {
	s := &Seccomp{Mode: SeccompRemove, Syscalls: DefaultSeccompRemoveSet()}
	if err := s.validate(); err != nil {
		t.Fatalf("the default set is invalid: %v", err)
	}
	f := newFilterVM(t, s)
	for _, name := range []string{"mount", "umount2", "ptrace", "kexec_load", "init_module", "bpf", "open_by_handle_at", "unshare", "setns", "fsopen"} {
		if got := f.call(name); got != eperm {
			t.Errorf("%s: %#x, want denied", name, got)
		}
	}
	for _, name := range []string{"read", "write", "openat", "clone", "execve", "mmap", "socket", "chown", "mkdirat", "futex"} {
		if got := f.call(name); got != allow {
			t.Errorf("%s: %#x, want allowed", name, got)
		}
	}
}

func TestSeccompNothingToFilter(t *testing.T) {
	for _, s := range []*Seccomp{
		{Mode: SeccompRemove},
		// Names of other architectures only.
		{Mode: SeccompRemove, Syscalls: []string{foreignOnlySyscall(t)}},
	} {
		if raw, err := s.filterProgram(); err != nil || raw != nil {
			t.Errorf("%v: %d instructions, %v; want no filter", s.Syscalls, len(raw), err)
		}
	}
}

// foreignOnlySyscall names a syscall the running architecture lacks.
func foreignOnlySyscall(t *testing.T) string {
	info, err := arch.GetInfo("")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"vm86", "ipc", "socketcall", "arm_fadvise64_64"} {
		if _, ok := info.SyscallNames[name]; !ok {
			return name
		}
	}
	t.Skip("no syscall known to be missing here")
	return ""
}

func TestSeccompValidate(t *testing.T) {
	for _, tc := range []struct {
		s   Seccomp
		err string
	}{
		{Seccomp{Mode: "deny", Syscalls: []string{"read"}}, "mode"},
		{Seccomp{Mode: SeccompRemove, Syscalls: []string{"reed"}}, `unknown syscall "reed"`},
		{Seccomp{Mode: SeccompRetain, Syscalls: []string{"read"}}, "execve"},
		{Seccomp{Mode: SeccompRemove, Syscalls: []string{"read"}, Errno: 4096}, "errno"},
		{Seccomp{Mode: SeccompRemove, Syscalls: []string{"read"}, Errno: -1}, "errno"},
	} {
		err := tc.s.validate()
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%+v: %v, want an error about %s", tc.s, err, tc.err)
		}
	}
	ok := Seccomp{Mode: SeccompRetain, Syscalls: []string{"execve", "vm86"}, Errno: 4095}
	if err := ok.validate(); err != nil {
		t.Errorf("%+v: %v", ok, err)
	}
}
