package cgroup

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPopulated(t *testing.T) {
	root := t.TempDir()
	pod := filepath.Join(root, "orbit", "pod")
	app := filepath.Join(pod, "app")
	if err := os.MkdirAll(app, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(dir, procs string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(procs), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(pod, "")
	write(app, "")
	check := func(want bool, dirs ...string) {
		t.Helper()
		got, err := Populated(dirs)
		if err != nil || got != want {
			t.Fatalf("Populated(%v) = %v, %v; want %v", dirs, got, err, want)
		}
	}
	check(false, pod)
	check(false, filepath.Join(root, "absent"))
	check(false)
	write(app, "42\n")
	check(true, pod) // a process in a group below counts
	check(true, filepath.Join(root, "absent"), pod)
	write(app, "0\n") // a process outside our PID namespace shows as 0
	check(false, pod)
	write(pod, "7\n")
	check(true, pod)
	write(pod, "x\n")
	if _, err := Populated([]string{pod}); err == nil {
		t.Fatal("a malformed cgroup.procs was accepted")
	}
}
