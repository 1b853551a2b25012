package pod

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// WaitAppExec waits until process pid, an app's process, no longer runs
// the binary of its parent, which started it as the stage2 launcher by
// re-executing itself: until the launcher has entered the app's root and
// exec'd the app. A command entered before that would get the launcher's
// root, not the app's. It gives up with an error after timeout; a process
// that is gone is no error here (what is done with it next fails on its
// own).
func WaitAppExec(pid int, timeout time.Duration) error {
	parent, err := parentOf(pid)
	if err != nil {
		return nil
	}
	var launcher unix.Stat_t
	if err := unix.Stat(fmt.Sprintf("/proc/%d/exe", parent), &launcher); err != nil {
		return nil
	}
	deadline := time.Now().Add(timeout)
	for {
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/exe", pid), &st); err != nil || st.Dev != launcher.Dev || st.Ino != launcher.Ino {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d has not started its app after %s", pid, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// parentOf is a process's parent, from the PPid line of its status.
func parentOf(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "PPid:"); ok {
			return strconv.Atoi(strings.TrimSpace(rest))
		}
	}
	return 0, fmt.Errorf("process %d: no PPid in its status", pid)
}
