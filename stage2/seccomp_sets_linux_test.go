package stage2

import (
	"errors"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func TestParseErrno(t *testing.T) {
	for name, want := range map[string]int{"": 0, "EPERM": int(unix.EPERM), "ENOSYS": int(unix.ENOSYS), "ENOTSUP": int(unix.ENOTSUP)} {
		if got, err := ParseErrno(name); err != nil || got != want {
			t.Errorf("ParseErrno(%q) = %d, %v; want %d", name, got, err, want)
		}
	}
	for _, name := range []string{"eperm", "EWHATEVER", "1"} {
		if _, err := ParseErrno(name); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("ParseErrno(%q): %v", name, err)
		}
	}
}

func TestSeccompFromSet(t *testing.T) {
	got, err := SeccompFromSet(SeccompRemove, []string{SeccompRktDefaultRemove, "socket", "mount"}, "ENOSYS")
	if err != nil {
		t.Fatal(err)
	}
	want := append(DefaultSeccompRemoveSet(), "socket")
	if got.Mode != SeccompRemove || got.Errno != int(unix.ENOSYS) || !reflect.DeepEqual(got.Syscalls, want) {
		t.Errorf("remove set: %+v", got)
	}
	got, err = SeccompFromSet(SeccompRetain, []string{SeccompDockerDefaultRetain, "mount"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if !containsString(got.Syscalls, "mount") || !containsString(got.Syscalls, "read") || containsString(got.Syscalls, "ptrace") {
		t.Errorf("retain set: %v", got.Syscalls)
	}
	for _, tc := range []struct {
		mode SeccompMode
		set  []string
	}{
		{SeccompRetain, []string{SeccompAll}},
		{SeccompRemove, []string{SeccompEmpty}},
		{SeccompRemove, nil},
	} {
		if s, err := SeccompFromSet(tc.mode, tc.set, ""); err != nil || s != nil {
			t.Errorf("%s %v: %+v, %v; want no filter", tc.mode, tc.set, s, err)
		}
	}
	for _, tc := range []struct {
		mode  SeccompMode
		set   []string
		errno string
	}{
		{SeccompRemove, []string{SeccompAll}, ""},
		{SeccompRemove, []string{"@systemd/mount"}, ""},
		{SeccompRemove, []string{"notasyscall"}, ""},
		{SeccompRetain, []string{"read"}, ""},
		{SeccompRemove, []string{"read"}, "EBOGUS"},
		{"both", []string{"read"}, ""},
	} {
		if _, err := SeccompFromSet(tc.mode, tc.set, tc.errno); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s %v %s: %v, want ErrInvalid", tc.mode, tc.set, tc.errno, err)
		}
	}
}

func TestDefaultSeccompRetainSet(t *testing.T) {
	set := DefaultSeccompRetainSet()
	for _, name := range []string{"read", "execve", "mmap", "rt_sigreturn", "futex", "clone"} {
		if !containsString(set, name) {
			t.Errorf("the default allow list lacks %s", name)
		}
	}
	for _, name := range DefaultSeccompRemoveSet() {
		if containsString(set, name) {
			t.Errorf("the default allow list holds %s", name)
		}
	}
}
