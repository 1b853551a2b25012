// Package devicefilter enforces a cgroup's device allow-list on cgroup v2,
// where there is no devices controller: an eBPF program of type
// BPF_PROG_TYPE_CGROUP_DEVICE, run by the kernel on every mknod and every
// open of a device node by a process of the cgroup (or of a cgroup below
// it), returns whether the access is allowed.
//
// It is a package of its own so that the pod supervisor, which never
// attaches programs, does not carry the eBPF library.
package devicefilter

import (
	"fmt"
	"strconv"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/stage1/cgroup"
)

// The kernel's struct bpf_cgroup_dev_ctx: access_type (the access in the
// high 16 bits, the device type in the low ones), major, minor; all u32.
const (
	ctxAccessType = 0
	ctxMajor      = 4
	ctxMinor      = 8

	devBlock = 1 // BPF_DEVCG_DEV_BLOCK
	devChar  = 2 // BPF_DEVCG_DEV_CHAR

	accMknod = 1 // BPF_DEVCG_ACC_MKNOD
	accRead  = 2 // BPF_DEVCG_ACC_READ
	accWrite = 4 // BPF_DEVCG_ACC_WRITE
)

// Program returns the instructions of the filter for the rules: an access
// is allowed when one rule matches the device's type and numbers and
// grants every kind of access asked for; anything else is denied.
func Program(rules []cgroup.DeviceRule) (asm.Instructions, error) {
	insns := asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, ctxAccessType, asm.Word),
		asm.Mov.Reg(asm.R3, asm.R2),
		asm.And.Imm(asm.R3, 0xffff), // R3: type
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.RSh.Imm(asm.R4, 16), // R4: access
		asm.LoadMem(asm.R5, asm.R1, ctxMajor, asm.Word),
		asm.LoadMem(asm.R6, asm.R1, ctxMinor, asm.Word),
	}
	label := "" // the symbol the next instruction gets: the previous rule's "no match"
	add := func(ins asm.Instruction) {
		if label != "" {
			ins = ins.WithSymbol(label)
			label = ""
		}
		insns = append(insns, ins)
	}
	for i, r := range rules {
		if err := r.Validate(); err != nil {
			return nil, err
		}
		next := "rule" + strconv.Itoa(i+1)
		matched := false
		switch r.Type {
		case 'c':
			add(asm.JNE.Imm32(asm.R3, devChar, next))
			matched = true
		case 'b':
			add(asm.JNE.Imm32(asm.R3, devBlock, next))
			matched = true
		}
		if r.Major != cgroup.AnyDevice {
			add(asm.JNE.Imm32(asm.R5, int32(uint32(r.Major)), next))
			matched = true
		}
		if r.Minor != cgroup.AnyDevice {
			add(asm.JNE.Imm32(asm.R6, int32(uint32(r.Minor)), next))
			matched = true
		}
		if denied := ^access(r.Access) & (accMknod | accRead | accWrite); denied != 0 {
			add(asm.Mov.Reg(asm.R7, asm.R4))
			add(asm.And.Imm(asm.R7, denied))
			add(asm.JNE.Imm(asm.R7, 0, next))
			matched = true
		}
		add(asm.Mov.Imm(asm.R0, 1))
		insns = append(insns, asm.Return())
		if !matched {
			return insns, nil // allows everything: later rules are moot
		}
		label = next
	}
	add(asm.Mov.Imm(asm.R0, 0))
	insns = append(insns, asm.Return())
	return insns, nil
}

func access(s string) int32 {
	var a int32
	for _, c := range s {
		switch c {
		case 'r':
			a |= accRead
		case 'w':
			a |= accWrite
		case 'm':
			a |= accMknod
		}
	}
	return a
}

// Attach loads the filter for rules and attaches it to the cgroup2
// directory dir. The attachment is the kernel's, not this process's: it
// lasts until the cgroup is removed, whatever becomes of the caller. It is
// made with BPF_F_ALLOW_MULTI, so programs attached below can only deny
// more: every program on the way up must allow an access.
func Attach(dir string, rules []cgroup.DeviceRule) error {
	insns, err := Program(rules)
	if err != nil {
		return err
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.CGroupDevice,
		Instructions: insns,
		License:      "Apache-2.0",
	})
	if err != nil {
		return fmt.Errorf("loading the device filter: %w", err)
	}
	defer prog.Close()
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("attaching the device filter: %w", err)
	}
	defer unix.Close(fd)
	err = link.RawAttachProgram(link.RawAttachProgramOptions{
		Target:  fd,
		Program: prog,
		Attach:  ebpf.AttachCGroupDevice,
		Flags:   unix.BPF_F_ALLOW_MULTI,
	})
	if err != nil {
		return fmt.Errorf("attaching the device filter to %s: %w", dir, err)
	}
	return nil
}
