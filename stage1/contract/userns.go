package contract

import (
	"fmt"
	"strconv"
	"strings"
)

// A UserRange is the value of the run entrypoint's FlagPrivateUsers, as
// rkt gave it: "SHIFT:COUNT". The pod runs in a user namespace where its
// user and group IDs 0..COUNT-1 are the host's SHIFT..SHIFT+COUNT-1, so the
// pod's root is an unprivileged user of the host. stage0 picks the range
// when the pod is prepared, so no two pods share one, and records it; a
// stage1 flavour that cannot run a pod in a user namespace refuses the
// flag.
type UserRange struct {
	Shift uint32
	Count uint32
}

// UserRangeCount is the size of every range stage0 picks: the 16-bit IDs
// an image's files and users use.
const UserRangeCount = 0x10000

// String is the flag's value.
func (r UserRange) String() string { return fmt.Sprintf("%d:%d", r.Shift, r.Count) }

// Contains reports whether the host ID id is in the range.
func (r UserRange) Contains(id uint32) bool { return id >= r.Shift && id-r.Shift < r.Count }

// ParseUserRange reads FlagPrivateUsers's value. A range that maps the
// host's root, or wraps around the 32-bit IDs, is refused.
func ParseUserRange(s string) (UserRange, error) {
	a, b, ok := strings.Cut(s, ":")
	shift, err1 := strconv.ParseUint(a, 10, 32)
	count, err2 := strconv.ParseUint(b, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return UserRange{}, fmt.Errorf("--%s=%q: want SHIFT:COUNT", FlagPrivateUsers, s)
	}
	if shift == 0 || count == 0 || shift+count > 1<<32-1 {
		return UserRange{}, fmt.Errorf("--%s=%q: the range must be above the host's root and within 32 bits", FlagPrivateUsers, s)
	}
	return UserRange{Shift: uint32(shift), Count: uint32(count)}, nil
}
