package devicefilter

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/stage1/cgroup"
)

func TestProgramRefusesBadRules(t *testing.T) {
	for _, r := range []cgroup.DeviceRule{
		{Type: 'x', Major: 1, Minor: 3, Access: "rwm"},
		{Type: 'c', Major: -2, Minor: 3, Access: "rwm"},
		{Type: 'c', Major: 1, Minor: 3, Access: ""},
		{Type: 'c', Major: 1, Minor: 3, Access: "rwx"},
	} {
		if _, err := Program([]cgroup.DeviceRule{r}); err == nil {
			t.Errorf("rule %+v accepted", r)
		}
	}
}

// A process in a group with the filter attached can use only the devices
// the rules allow, for the accesses they allow.
func TestAttachEnforces(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	l, err := cgroup.Detect()
	if err != nil || l.Unified == nil {
		t.Skipf("no cgroup2 tree: %v", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	path := "orbit-devtest-" + hex.EncodeToString(b[:])
	g, err := l.Create(path, cgroup.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Remove(path) })
	rules := []cgroup.DeviceRule{
		{Type: 'c', Major: 1, Minor: 3, Access: "rwm"}, // null
		{Type: 'c', Major: 1, Minor: 5, Access: "m"},   // zero: mknod only
	}
	if err := Attach(g.UnifiedDir(), rules); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := `cat /dev/null && echo null=ok
head -c 1 /dev/zero >/dev/null 2>&1 || echo zero=denied
mknod ` + dir + `/z c 1 5 && echo mknod-zero=ok
head -c 1 ` + dir + `/z >/dev/null 2>&1 || echo open-zero=denied
mknod ` + dir + `/u c 1 9 2>/dev/null || echo mknod-urandom=denied
mknod ` + dir + `/b b 7 0 2>/dev/null || echo mknod-block=denied
`
	fd, err := unix.Open(g.UnifiedDir(), unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{"null=ok", "zero=denied", "mknod-zero=ok", "open-zero=denied", "mknod-urandom=denied", "mknod-block=denied"} {
		if !strings.Contains(string(out), want+"\n") {
			t.Errorf("want %s:\n%s", want, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "b")); err == nil {
		t.Errorf("a block device node was made")
	}
}

// A rule that allows everything ends the program: no unreachable code for
// the verifier to refuse.
func TestProgramAllowAll(t *testing.T) {
	insns, err := Program([]cgroup.DeviceRule{{Type: 'a', Major: cgroup.AnyDevice, Minor: cgroup.AnyDevice, Access: "rwm"}, {Type: 'c', Major: 1, Minor: 3, Access: "r"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(insns) != 9 {
		t.Errorf("%d instructions, want the prologue and one return:\n%v", len(insns), insns)
	}
}
