package idmap

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// An ID-mapped copy shows the directory's files shifted, and the
// directory itself is left as it was.
func TestCloneShiftsOwners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ID-mapped mounts need root")
	}
	dir := t.TempDir()
	src, target := filepath.Join(dir, "src"), filepath.Join(dir, "target")
	for _, d := range []string{src, target} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(filepath.Join(src, "f"), 7, 8); err != nil {
		t.Fatal(err)
	}
	ns, err := UserNamespace(Range{Shift: 600000, Count: 65536})
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	m, err := Clone(src, ns)
	if err != nil {
		t.Skipf("this kernel or filesystem does not ID-map: %v", err)
	}
	defer m.Close()
	if err := Attach(m, target); err != nil {
		t.Fatal(err)
	}
	defer syscall.Unmount(target, syscall.MNT_DETACH)
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(target, "f"), &st); err != nil || st.Uid != 600007 || st.Gid != 600008 {
		t.Errorf("through the mapping the file is %d:%d (%v), want 600007:600008", st.Uid, st.Gid, err)
	}
	if err := syscall.Lstat(filepath.Join(src, "f"), &st); err != nil || st.Uid != 7 || st.Gid != 8 {
		t.Errorf("the source file became %d:%d (%v)", st.Uid, st.Gid, err)
	}
	if err := os.WriteFile(filepath.Join(target, "g"), nil, 0o644); err == nil {
		t.Error("the mapped copy is writable")
	}
}
