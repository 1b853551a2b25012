package stage2

import (
	"errors"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func TestCapabilityNumbersMatchTheKernel(t *testing.T) {
	for name, n := range map[string]int{
		"CAP_CHOWN": unix.CAP_CHOWN, "CAP_SETPCAP": unix.CAP_SETPCAP, "CAP_NET_RAW": unix.CAP_NET_RAW,
		"CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN, "CAP_AUDIT_WRITE": unix.CAP_AUDIT_WRITE,
		"CAP_SETFCAP": unix.CAP_SETFCAP, "CAP_AUDIT_READ": unix.CAP_AUDIT_READ,
		"CAP_CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE,
	} {
		if got, ok := capabilityNumber(name); !ok || got != n {
			t.Errorf("%s = %d, want %d", name, got, n)
		}
	}
	if len(capabilityNames()) != unix.CAP_LAST_CAP+1 {
		t.Errorf("%d names, the kernel headers know %d", len(capabilityNames()), unix.CAP_LAST_CAP+1)
	}
}

func TestCapabilitiesFromSets(t *testing.T) {
	for _, tc := range []struct {
		name           string
		retain, remove []string
		want           []string
		errorIs        error
	}{
		{name: "default", want: DefaultCapabilities()},
		{name: "remove from default", remove: []string{"CAP_CHOWN", "net_raw", "CAP_SYS_ADMIN"},
			want: without(DefaultCapabilities(), "CAP_CHOWN", "CAP_NET_RAW")},
		{name: "retain exactly", retain: []string{"CAP_SYS_ADMIN", "cap_kill", "KILL"},
			want: []string{"CAP_KILL", "CAP_SYS_ADMIN"}},
		{name: "retain nothing", retain: []string{}, want: []string{}},
		{name: "both", retain: []string{"CAP_KILL"}, remove: []string{"CAP_CHOWN"}, errorIs: errdefs.ErrInvalid},
		{name: "unknown retained", retain: []string{"CAP_FLY"}, errorIs: errdefs.ErrInvalid},
		{name: "unknown removed", remove: []string{"CAP_"}, errorIs: errdefs.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := CapabilitiesFromSets(tc.retain, tc.remove)
			if tc.errorIs != nil {
				if !errors.Is(err, tc.errorIs) {
					t.Fatalf("error %v, want %v", err, tc.errorIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(sortedCaps(got), sortedCaps(tc.want)) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDefaultCapabilities(t *testing.T) {
	want := []string{"CAP_AUDIT_WRITE", "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER",
		"CAP_KILL", "CAP_MKNOD", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID",
		"CAP_SETPCAP", "CAP_SETFCAP", "CAP_SYS_CHROOT"}
	if !reflect.DeepEqual(sortedCaps(DefaultCapabilities()), sortedCaps(want)) {
		t.Errorf("DefaultCapabilities() = %v", DefaultCapabilities())
	}
}

func TestCapMask(t *testing.T) {
	m := maskOf([]int{0, 5, 40, 63}, 40)
	if !m.has(0) || !m.has(5) || !m.has(40) || m.has(63) || m.has(1) {
		t.Errorf("mask %x", uint64(m))
	}
}

func without(s []string, drop ...string) []string {
	var out []string
	for _, x := range s {
		if !containsString(drop, x) {
			out = append(out, x)
		}
	}
	return out
}

// sortedCaps orders names by capability number.
func sortedCaps(names []string) []int {
	return capabilityNumbers(names)
}
