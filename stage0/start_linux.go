package stage0

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// OutputFile is where a sandbox started in the background (Start) writes
// its output: stage1's and the apps'. It is stage0's own file.
const OutputFile = "output.log"

// startTimeout bounds how long Start waits for a sandbox to answer.
const startTimeout = 2 * time.Minute

// Start starts a sandbox that this process holds locked in prepare, as Run
// does, but in the background: stage1 runs as a child in a session of its
// own, holding the pod lock, with its output appended to the pod's
// OutputFile, and Start returns once the pod's supervisor answers on its
// control socket. If stage1 ends first, or ctx ends, the pod is stopped
// and Start fails. The lock stays held by stage1 when this process exits.
func Start(ctx context.Context, p *Pod, cfg RunConfig) error {
	if !cfg.Mutable {
		return fmt.Errorf("pod %s: only a sandbox is started in the background: %w", p.UUID, errdefs.ErrInvalid)
	}
	entry, args, err := startStage1(p, &cfg)
	if err != nil {
		return err
	}
	fd, err := p.LockFd()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(p.File(OutputFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(entry, args...)
	cmd.Dir = p.Path()
	cmd.Stdout, cmd.Stderr = out, out
	// The lock's descriptor becomes the child's 3.
	cmd.ExtraFiles = []*os.File{os.NewFile(uintptr(fd), "pod-lock")}
	cmd.Env = append(os.Environ(), contract.LockFDEnvVar(3))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting stage1 %s: %w", entry, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fail := func(err error) error {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
		return err
	}
	sock := contract.ControlSocket(p.Path())
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("pod %s ended before it was running (%v); its output is in %s: %w", p.UUID, err, p.File(OutputFile), errdefs.ErrInvalid)
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-deadline.C:
			return fail(fmt.Errorf("pod %s: its supervisor did not answer within %v: %w", p.UUID, startTimeout, errdefs.ErrBusy))
		case <-tick.C:
			// The socket answers once the supervisor listens.
			if _, err := contract.CallControl(sock, contract.ControlRequest{Op: contract.OpState}, nil, time.Second); err == nil {
				return nil
			}
		}
	}
}
