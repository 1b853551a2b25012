package stage2

import (
	"fmt"
	"sort"
	"strings"
	"syscall"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// Wildcards an appc seccomp set may hold besides syscall names: appc's own
// two, and rkt's and Docker's default lists.
const (
	SeccompAll                 = "@appc.io/all"
	SeccompEmpty               = "@appc.io/empty"
	SeccompRktDefaultRemove    = "@rkt/default-blacklist"
	SeccompRktDefaultRetain    = "@rkt/default-whitelist"
	SeccompDockerDefaultRemove = "@docker/default-blacklist"
	SeccompDockerDefaultRetain = "@docker/default-whitelist"
)

// DefaultSeccompRetainSet returns the syscalls allowed by the default
// allow list: every syscall of the running architecture except those of
// DefaultSeccompRemoveSet. Unlike the deny list, it also refuses syscalls
// newer than orbit's syscall table.
func DefaultSeccompRetainSet() []string {
	info, err := arch.GetInfo("")
	if err != nil {
		return nil
	}
	deny := map[string]bool{}
	for _, name := range DefaultSeccompRemoveSet() {
		deny[name] = true
	}
	var out []string
	for name := range info.SyscallNames {
		if !deny[name] {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// SeccompFromSet builds a filter from the appc isolators
// os/linux/seccomp-retain-set and os/linux/seccomp-remove-set: a mode, a
// set of syscall names and wildcards (SeccompAll, SeccompEmpty, rkt's and
// Docker's default lists), and an errno name ("" for EPERM). It returns nil
// when the set filters nothing (retaining @appc.io/all, removing nothing).
// Unknown names, wildcards and errnos wrap errdefs.ErrInvalid.
func SeccompFromSet(mode SeccompMode, set []string, errno string) (*Seccomp, error) {
	e, err := ParseErrno(errno)
	if err != nil {
		return nil, err
	}
	all := false
	seen := map[string]bool{}
	var names []string
	add := func(list ...string) {
		for _, n := range list {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	for _, entry := range set {
		switch entry {
		case SeccompAll:
			all = true
		case SeccompEmpty:
		case SeccompRktDefaultRemove, SeccompDockerDefaultRemove:
			add(DefaultSeccompRemoveSet()...)
		case SeccompRktDefaultRetain, SeccompDockerDefaultRetain:
			add(DefaultSeccompRetainSet()...)
		default:
			if strings.HasPrefix(entry, "@") {
				return nil, fmt.Errorf("seccomp: unsupported wildcard %q: %w", entry, errdefs.ErrInvalid)
			}
			add(entry)
		}
	}
	switch {
	case mode == SeccompRetain && all:
		return nil, nil
	case mode == SeccompRemove && all:
		return nil, fmt.Errorf("seccomp: removing %s leaves the app no syscall to start with: %w", SeccompAll, errdefs.ErrInvalid)
	case mode == SeccompRemove && len(names) == 0:
		return nil, nil
	}
	s := &Seccomp{Mode: mode, Syscalls: names, Errno: e}
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("seccomp: %w: %w", err, errdefs.ErrInvalid)
	}
	return s, nil
}

// ParseErrno returns the number of an errno name such as "ENOSYS"; "" is 0.
func ParseErrno(name string) (int, error) {
	if name == "" {
		return 0, nil
	}
	for e := 1; e <= maxErrno; e++ {
		if unix.ErrnoName(syscall.Errno(e)) == name {
			return e, nil
		}
	}
	return 0, fmt.Errorf("errno %q: %w", name, errdefs.ErrInvalid)
}
