package nspawn

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/stage1/contract"
)

func TestShiftID(t *testing.T) {
	r := contract.UserRange{Shift: 524288, Count: 65536}
	for _, c := range []struct{ in, want uint32 }{
		{0, 524288}, {1000, 525288}, {65535, 589823},
		{524288, 524288}, {589823, 589823}, // already shifted: left
		{70000, 70000}, // outside what an image uses: left, seen as nobody
	} {
		if got := shiftID(r, c.in); got != c.want {
			t.Errorf("shiftID(%d) = %d, want %d", c.in, got, c.want)
		}
	}
}

// A chown by the shift keeps the set-ID bits, and doing it twice changes
// nothing more.
func TestChownShifted(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	r := contract.UserRange{Shift: 524288, Count: 65536}
	f := filepath.Join(t.TempDir(), "suid")
	if err := os.WriteFile(f, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(f, 0o4755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		var st unix.Stat_t
		if err := unix.Lstat(f, &st); err != nil {
			t.Fatal(err)
		}
		if err := chownShifted(f, &st, r); err != nil {
			t.Fatal(err)
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(f, &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != r.Shift || st.Gid != r.Shift || st.Mode&0o7777 != 0o4755 {
		t.Errorf("after two chowns: %d:%d %o, want %d:%d 4755", st.Uid, st.Gid, st.Mode&0o7777, r.Shift, r.Shift)
	}
}
