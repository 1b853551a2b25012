package stage0

import (
	"fmt"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// Enter runs a command in a running pod's app through the stage1 enter
// entrypoint, replacing this process. It returns only on failure.
func Enter(p *Pod, app string, command []string) error {
	if p.State != Running {
		return fmt.Errorf("pod %s is %s, not running: %w", p.UUID, p.State, errdefs.ErrInvalid)
	}
	pm, err := p.Manifest()
	if err != nil {
		return err
	}
	if app == "" {
		if len(pm.Apps) != 1 {
			return fmt.Errorf("pod %s has %d apps; name one with --app: %w", p.UUID, len(pm.Apps), errdefs.ErrInvalid)
		}
		app = pm.Apps[0].Name.String()
	} else if pm.Apps.Get(appNameOrEmpty(app)) == nil {
		return fmt.Errorf("pod %s has no app %q: %w", p.UUID, app, errdefs.ErrNotFound)
	}
	pid, err := p.Pid()
	if err != nil {
		return err
	}
	s1, err := Stage1Of(p)
	if err != nil {
		return err
	}
	entry, err := s1.Entrypoint(contract.Enter)
	if err != nil {
		return err
	}
	if err := os.Chdir(p.Path()); err != nil {
		return err
	}
	e := contract.EnterArgs{Pid: pid, App: app, Command: command}
	argv := append([]string{entry}, e.Args()...)
	err = unix.Exec(entry, argv, os.Environ())
	return fmt.Errorf("starting stage1 enter %s: %w", entry, err)
}

// Stop asks a running pod's stage1 to stop it (SIGKILL with force).
func Stop(p *Pod, force bool) error {
	if p.State != Running {
		return fmt.Errorf("pod %s is %s, not running: %w", p.UUID, p.State, errdefs.ErrInvalid)
	}
	s1, err := Stage1Of(p)
	if err != nil {
		return err
	}
	entry, err := s1.Entrypoint(contract.Stop)
	if err != nil {
		return err
	}
	args := contract.StopArgs{Force: force, UUID: p.UUID}
	cmd := exec.Command(entry, args.Args()...)
	cmd.Dir = p.Path()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("stopping pod %s: %v: %s", p.UUID, err, out)
	}
	return nil
}
