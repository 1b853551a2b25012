package stage2

import (
	"errors"
	"fmt"

	"github.com/orbit-containers/orbit/stage1/contract"
)

// Exit statuses of the launcher when the app could not be started, as the
// stage1 contract reserves them. They follow the shell's conventions, so a
// pod's exit status reads the same whether the app failed to start under
// orbit or under sh.
const (
	// ExitSetupFailed: the launcher failed before the exec (an invalid
	// spec, a mount, the user, capabilities...).
	ExitSetupFailed = contract.ExitAppSetupFailed
	// ExitNotExecutable: the program was found but could not be executed
	// (permission denied, bad format).
	ExitNotExecutable = contract.ExitAppNotExecutable
	// ExitNotFound: the program does not exist.
	ExitNotFound = contract.ExitAppNotFound
)

// launchError is a failed step of the launch.
type launchError struct {
	app  string
	step string
	code int
	err  error
}

func (e *launchError) Error() string {
	if e.step == "" {
		return e.err.Error() // already names the app
	}
	return fmt.Sprintf("app %q: %s: %v", e.app, e.step, e.err)
}

func (e *launchError) Unwrap() error { return e.err }

// ExitCode returns the exit status the launcher uses for an error from
// Launch: ExitNotFound, ExitNotExecutable or ExitSetupFailed.
func ExitCode(err error) int {
	var le *launchError
	if errors.As(err, &le) {
		return le.code
	}
	return ExitSetupFailed
}
