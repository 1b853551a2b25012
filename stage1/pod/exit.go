package pod

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"

	"github.com/orbit-containers/orbit/stage1/contract"
)

// WaitStatus waits for a started command and turns how it ended into a
// shell-style exit status: its exit code, or 128+n when signal n killed
// it (contract.ExitSignaled). It fails only when the command did not run
// to an end.
func WaitStatus(cmd *exec.Cmd) (int, error) {
	err := cmd.Wait()
	if cmd.ProcessState == nil {
		return 0, fmt.Errorf("waiting for %s: %w", cmd.Path, err)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return 0, fmt.Errorf("waiting for %s: %w", cmd.Path, err)
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return contract.ExitSignaled(ws.Signal()), nil
	}
	return cmd.ProcessState.ExitCode(), nil
}
