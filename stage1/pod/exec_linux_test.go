package pod

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestWaitAppExec(t *testing.T) {
	if os.Getenv("ORBIT_TEST_WAIT_EXEC_CHILD") != "" {
		// The "launcher": this binary, as its parent runs it, for a while.
		time.Sleep(10 * time.Second)
		os.Exit(0)
	}
	// A child running another binary has exec'd its app.
	app := exec.Command("sleep", "10")
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { app.Process.Kill(); app.Wait() }()
	if err := WaitAppExec(app.Process.Pid, time.Second); err != nil {
		t.Errorf("a child running its own binary: %v", err)
	}
	// A child still running its parent's binary has not.
	launcher := exec.Command("/proc/self/exe", "-test.run=^TestWaitAppExec$")
	launcher.Env = append(os.Environ(), "ORBIT_TEST_WAIT_EXEC_CHILD=1")
	if err := launcher.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { launcher.Process.Kill(); launcher.Wait() }()
	start := time.Now()
	if err := WaitAppExec(launcher.Process.Pid, 300*time.Millisecond); err == nil {
		t.Error("a child still running its parent's binary counted as its app")
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("gave up after %s", d)
	}
	// A process that is gone is left to what comes next.
	if err := WaitAppExec(1<<22+7, time.Second); err != nil {
		t.Errorf("a missing process: %v", err)
	}
}
