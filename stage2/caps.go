package stage2

import (
	"fmt"
	"sort"
	"strings"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// capabilityList names Linux capabilities in number order
// (<linux/capability.h>): CAP_CHOWN is 0. A running kernel may know fewer;
// see lastCapability in caps_linux.go.
const capabilityList = "CAP_CHOWN CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_FOWNER " +
	"CAP_FSETID CAP_KILL CAP_SETGID CAP_SETUID " +
	"CAP_SETPCAP CAP_LINUX_IMMUTABLE CAP_NET_BIND_SERVICE CAP_NET_BROADCAST " +
	"CAP_NET_ADMIN CAP_NET_RAW CAP_IPC_LOCK CAP_IPC_OWNER " +
	"CAP_SYS_MODULE CAP_SYS_RAWIO CAP_SYS_CHROOT CAP_SYS_PTRACE " +
	"CAP_SYS_PACCT CAP_SYS_ADMIN CAP_SYS_BOOT CAP_SYS_NICE " +
	"CAP_SYS_RESOURCE CAP_SYS_TIME CAP_SYS_TTY_CONFIG CAP_MKNOD " +
	"CAP_LEASE CAP_AUDIT_WRITE CAP_AUDIT_CONTROL CAP_SETFCAP " +
	"CAP_MAC_OVERRIDE CAP_MAC_ADMIN CAP_SYSLOG CAP_WAKE_ALARM " +
	"CAP_BLOCK_SUSPEND CAP_AUDIT_READ CAP_PERFMON CAP_BPF " +
	"CAP_CHECKPOINT_RESTORE"

// capabilityNames returns the capability names indexed by number.
func capabilityNames() []string { return strings.Fields(capabilityList) }

// capabilityNumber returns the number of a capability given as
// "CAP_NET_RAW", "cap_net_raw" or "NET_RAW".
func capabilityNumber(name string) (int, bool) {
	n := strings.ToUpper(strings.TrimSpace(name))
	if !strings.HasPrefix(n, "CAP_") {
		n = "CAP_" + n
	}
	for i, c := range capabilityNames() {
		if c == n {
			return i, true
		}
	}
	return 0, false
}

// DefaultCapabilities returns the capabilities an app keeps when its image
// and the command line say nothing: rkt's default set, enough for ordinary
// daemons that start as root and drop privileges, without the
// capabilities that reach beyond the container (CAP_SYS_ADMIN,
// CAP_NET_ADMIN, CAP_SYS_MODULE, CAP_SYS_PTRACE...).
func DefaultCapabilities() []string {
	return []string{
		"CAP_CHOWN",
		"CAP_DAC_OVERRIDE",
		"CAP_FOWNER",
		"CAP_FSETID",
		"CAP_KILL",
		"CAP_SETGID",
		"CAP_SETUID",
		"CAP_SETPCAP",
		"CAP_NET_BIND_SERVICE",
		"CAP_NET_RAW",
		"CAP_SYS_CHROOT",
		"CAP_MKNOD",
		"CAP_AUDIT_WRITE",
		"CAP_SETFCAP",
	}
}

// CapabilitiesFromSets computes an app's capabilities from the appc
// isolators os/linux/capabilities-retain-set and
// os/linux/capabilities-remove-set: a retain set is the complete result; a
// remove set is taken from DefaultCapabilities; neither gives the default.
// The two sets exclude each other. Names are accepted with or without the
// CAP_ prefix, in any case; the result holds canonical names in
// capability-number order, without duplicates. Unknown names and both sets
// at once wrap errdefs.ErrInvalid.
func CapabilitiesFromSets(retain, remove []string) ([]string, error) {
	if retain != nil && remove != nil {
		return nil, fmt.Errorf("capabilities: both a retain set and a remove set: %w", errdefs.ErrInvalid)
	}
	base := DefaultCapabilities()
	if retain != nil {
		base = retain
	}
	keep, err := capabilitySet(base)
	if err != nil {
		return nil, err
	}
	drop, err := capabilitySet(remove)
	if err != nil {
		return nil, err
	}
	out := []string{}
	for n, name := range capabilityNames() {
		if keep[n] && !drop[n] {
			out = append(out, name)
		}
	}
	return out, nil
}

// capabilitySet validates names and returns them as a set of numbers.
func capabilitySet(names []string) (map[int]bool, error) {
	set := make(map[int]bool, len(names))
	for _, name := range names {
		n, ok := capabilityNumber(name)
		if !ok {
			return nil, fmt.Errorf("capability %q: %w", name, errdefs.ErrInvalid)
		}
		set[n] = true
	}
	return set, nil
}

// capabilityNumbers returns the sorted, deduplicated numbers of names, which
// must have been validated.
func capabilityNumbers(names []string) []int {
	set, _ := capabilitySet(names)
	out := make([]int, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}
