package pod

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/orbit-containers/orbit/stage1/contract"
)

func TestMainStatus(t *testing.T) {
	if code := Main("stage1 test", []string{"a"}, func(args []string) (int, error) {
		if len(args) != 1 || args[0] != "a" {
			t.Errorf("body got %q", args)
		}
		return 3, nil
	}); code != 3 {
		t.Errorf("status %d, want the body's 3", code)
	}
	if code := Main("stage1 test", nil, func([]string) (int, error) { return 3, errors.New("boom") }); code != contract.ExitFailure {
		t.Errorf("failed body: status %d, want %d", code, contract.ExitFailure)
	}
}

func TestStdin(t *testing.T) {
	in, closeIn := Stdin(true)
	if in != os.Stdin {
		t.Error("interactive: not this process's stdin")
	}
	closeIn()
	in, closeIn = Stdin(false)
	defer closeIn()
	if in.Name() != os.DevNull {
		t.Errorf("not interactive: %s, want %s", in.Name(), os.DevNull)
	}
}

func TestRelay(t *testing.T) {
	a := make(chan os.Signal, 1)
	b := make(chan os.Signal, 1)
	got := make(chan os.Signal, 2)
	stop := Relay(func(s os.Signal) { got <- s }, a, b)
	a <- syscall.SIGTERM
	b <- syscall.SIGCHLD
	seen := map[os.Signal]bool{}
	for range 2 {
		select {
		case s := <-got:
			seen[s] = true
		case <-time.After(5 * time.Second):
			t.Fatal("a signal was not relayed")
		}
	}
	if !seen[syscall.SIGTERM] || !seen[syscall.SIGCHLD] {
		t.Errorf("relayed %v, want SIGTERM and SIGCHLD", seen)
	}
	stop()
	// Once stopped, the channels are the caller's alone.
	a <- syscall.SIGHUP
	select {
	case s := <-a:
		if s != syscall.SIGHUP {
			t.Errorf("got %v", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the signal was taken after stop")
	}
	if len(got) != 0 {
		t.Error("relayed after stop")
	}
}

func TestWaitStatus(t *testing.T) {
	cmd := exec.Command("sh", "-c", "exit 7")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if code, err := WaitStatus(cmd); err != nil || code != 7 {
		t.Errorf("exit 7: %d, %v", code, err)
	}
	cmd = exec.Command("sh", "-c", "kill -KILL $$")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if code, err := WaitStatus(cmd); err != nil || code != contract.ExitSignaled(syscall.SIGKILL) {
		t.Errorf("killed: %d, %v", code, err)
	}
}
