package stage2

import (
	"sort"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The filter is built with github.com/elastic/go-seccomp-bpf, which
// assembles classic BPF in pure Go: the launcher stays a static binary
// without libseccomp or cgo.

// denyPlaceholder is the action the filter is assembled with for denied
// syscalls. go-seccomp-bpf has no errno parameter: its ActionErrno always
// returns EPERM, and a policy's default action must be one of its named
// actions. The filter is therefore assembled with ActionErrno and every
// "return EPERM" it produced is replaced by the errno asked for; the only
// other errno the library emits is its own ENOSYS for the x32 ABI.
const denyPlaceholder = seccomp.ActionErrno

// filterProgram assembles s into a classic BPF program for the running
// architecture. It returns nil when s filters nothing on this architecture.
//
// The program first refuses (ENOSYS) every syscall made under a foreign
// audit architecture: a 64-bit process can still make 32-bit syscalls, and
// a deny list that only knows the native numbers would let those through.
// go-seccomp-bpf adds the same check for the x32 ABI on x86_64.
func (s *Seccomp) filterProgram() ([]bpf.RawInstruction, error) {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil, err
	}
	if err := s.validate(); err != nil {
		return nil, err
	}
	errno := s.Errno
	if errno == 0 {
		errno = int(unix.EPERM)
	}
	seen := map[string]bool{}
	var names []string
	for _, name := range s.Syscalls {
		if _, ok := info.SyscallNames[name]; ok && !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	sort.Strings(names)
	policy := seccomp.Policy{DefaultAction: seccomp.ActionAllow}
	group := seccomp.SyscallGroup{Names: names, Action: denyPlaceholder}
	if s.Mode == SeccompRetain {
		policy.DefaultAction = denyPlaceholder
		group.Action = seccomp.ActionAllow
	} else if len(names) == 0 {
		return nil, nil
	}
	policy.Syscalls = []seccomp.SyscallGroup{group}
	body, err := policy.Assemble()
	if err != nil {
		return nil, err
	}
	deny := uint32(seccomp.ActionErrno) | uint32(errno)
	for i, ins := range body {
		if r, ok := ins.(bpf.RetConstant); ok && r.Val == uint32(denyPlaceholder)|uint32(unix.EPERM) {
			body[i] = bpf.RetConstant{Val: deny}
		}
	}
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(info.ID), SkipTrue: 1},
		bpf.RetConstant{Val: uint32(seccomp.ActionErrno) | uint32(unix.ENOSYS)},
	}
	prog = append(prog, body...)
	return bpf.Assemble(prog)
}
