package stage2

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Capability sets are per thread. Launch locks its goroutine to one OS
// thread, changes that thread's sets and execs from it, so what the app
// gets is exactly what was set here; the other threads of the launcher die
// at the exec.

// lastCapability returns the highest capability number the running kernel
// knows, probing the bounding set (no /proc needed).
func lastCapability() int {
	last := 0
	for n := 0; n < 64; n++ {
		if _, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(n), 0, 0, 0); err != nil {
			break
		}
		last = n
	}
	return last
}

// capMask is a 64-bit capability set.
type capMask uint64

func (m capMask) has(n int) bool { return m&(1<<uint(n)) != 0 }

// maskOf returns the set of capability numbers up to last.
func maskOf(nums []int, last int) capMask {
	var m capMask
	for _, n := range nums {
		if n <= last {
			m |= 1 << uint(n)
		}
	}
	return m
}

// capsState reads the thread's effective and permitted sets.
func capsState() (effective, permitted capMask, err error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, 0, fmt.Errorf("capget: %w", err)
	}
	effective = capMask(data[0].Effective) | capMask(data[1].Effective)<<32
	permitted = capMask(data[0].Permitted) | capMask(data[1].Permitted)<<32
	return effective, permitted, nil
}

// capsHeld reports a capability in the thread's effective set.
func capsHeld(n int) bool {
	eff, _, err := capsState()
	return err == nil && eff.has(n)
}

// limitBounding drops from the bounding set every capability not in keep,
// and returns keep without the capabilities the launcher does not hold
// (they cannot be given to the app; rkt dropped them silently, orbit warns
// on stderr). It must run while the launcher still has CAP_SETPCAP, before
// the switch of user.
func limitBounding(app string, keep capMask, last int) (capMask, error) {
	_, permitted, err := capsState()
	if err != nil {
		return 0, err
	}
	var missing []string
	names := capabilityNames()
	for n := 0; n <= last; n++ {
		if keep.has(n) && !permitted.has(n) {
			missing = append(missing, names[n])
			keep &^= 1 << uint(n)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "stage2: app %q: warning: capabilities not retained, the launcher does not hold them: %s\n", app, strings.Join(missing, ", "))
	}
	for n := 0; n <= last; n++ {
		if keep.has(n) {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(n), 0, 0, 0); err != nil {
			return 0, fmt.Errorf("drop %s from the bounding set: %w", names[n], err)
		}
	}
	return keep, nil
}

// setCapabilities makes the effective, permitted and inheritable sets
// exactly keep (effective and permitted also hold extra, which no exec
// passes on), and clears the ambient set. It runs after the switch of
// user; for a root app the sets survive its exec (keep is also its bounding
// set), and a non-root app is given keep 0. Ambient capabilities, the only
// way a non-root program keeps capabilities across an exec without file
// capabilities, are never raised.
func setCapabilities(keep, extra capMask) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	lo, hi := uint32(keep), uint32(keep>>32)
	all := keep | extra
	alo, ahi := uint32(all), uint32(all>>32)
	data := [2]unix.CapUserData{
		{Effective: alo, Permitted: alo, Inheritable: lo},
		{Effective: ahi, Permitted: ahi, Inheritable: hi},
	}
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capset: %w", err)
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("clear ambient set: %w", err)
	}
	return nil
}
