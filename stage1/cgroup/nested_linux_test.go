package cgroup

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestNestedRootsEachHierarchyAtOwnGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	l, err := Detect()
	if err != nil {
		t.Skipf("no cgroups: %v", err)
	}
	n, err := l.Nested()
	if err != nil {
		t.Fatal(err)
	}
	own, _ := os.ReadFile("/proc/self/cgroup")
	for _, h := range append(append([]*Hierarchy(nil), n.V1...), n.Unified) {
		if h == nil {
			continue
		}
		// The process's own cgroup.procs lists it.
		procs, err := os.ReadFile(filepath.Join(h.Mountpoint, "cgroup.procs"))
		if err != nil {
			t.Fatalf("%s: %v", h.Mountpoint, err)
		}
		if !strings.Contains("\n"+string(procs), "\n"+strconv.Itoa(os.Getpid())+"\n") {
			t.Errorf("nested %s does not hold this process (own cgroups:\n%s)", h.Mountpoint, own)
		}
	}
	if l.Unified != nil && n.Unified == nil {
		t.Error("the cgroup2 hierarchy was dropped")
	}
	// A group made through the nested layout is below the caller's.
	g, err := n.Create("orbit-test-nested", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.RemoveDirs(g.Dirs())
	for _, d := range g.Dirs() {
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			t.Errorf("group dir %s: %v", d, err)
		}
	}
	if err := n.RemoveDirs(g.Dirs()); err != nil {
		t.Fatal(err)
	}
	for _, d := range g.Dirs() {
		if _, err := os.Stat(d); err == nil {
			t.Errorf("%s left after RemoveDirs", d)
		}
	}
	if err := n.RemoveDirs([]string{"/etc"}); err == nil {
		t.Error("RemoveDirs accepted a directory outside the cgroup hierarchies")
	}
}
