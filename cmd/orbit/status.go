package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage0"
)

// waitFlag is rkt's --wait / --wait-ready value: a boolean (bare flag:
// wait without limit) or a duration (wait at most that long).
type waitFlag struct {
	on      bool
	timeout time.Duration // 0: no limit
}

func (w *waitFlag) Set(s string) error {
	if b, err := strconv.ParseBool(s); err == nil {
		w.on, w.timeout = b, 0
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return fmt.Errorf("want true, false or a duration such as 10s")
	}
	w.on, w.timeout = d > 0, d
	return nil
}

func (w *waitFlag) String() string {
	if w.timeout > 0 {
		return w.timeout.String()
	}
	return strconv.FormatBool(w.on)
}

func (w *waitFlag) Type() string { return "bool|duration" }

// until runs wait with ctx bounded by the flag's time limit, and says so
// when the limit ends the wait.
func (w *waitFlag) until(ctx context.Context, what string, wait func(context.Context) error) error {
	if w.timeout == 0 {
		return wait(ctx)
	}
	ctx, cancel := context.WithTimeoutCause(ctx, w.timeout, fmt.Errorf("the pod did not %s within %s: %w", what, w.timeout, errdefs.ErrBusy))
	defer cancel()
	err := wait(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return context.Cause(ctx)
	}
	return err
}

func newStatusCommand(g *globalOptions) *cobra.Command {
	var wait, waitReady waitFlag
	var format, uuidFile string
	cmd := &cobra.Command{
		Use:   "status [--wait[=DURATION]] [--wait-ready[=DURATION]] [--format=json] UUID|--uuid-file=FILE",
		Short: "Show the status of a pod",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := parseFormat(format)
			if err != nil {
				return err
			}
			id, err := oneUUID(cmd, args, uuidFile)
			if err != nil {
				return err
			}
			p, err := getPod(g, id)
			if err != nil {
				return err
			}
			if waitReady.on {
				if err := waitReady.until(cmd.Context(), "start", p.WaitReady); err != nil {
					return err
				}
			}
			if wait.on {
				if err := wait.until(cmd.Context(), "exit", p.Wait); err != nil {
					return err
				}
			}
			st, err := p.ReadStatus()
			if err != nil {
				return err
			}
			if f != formatTabbed {
				return writeJSONOut(g.Stdout, f, toPodJSON(st))
			}
			printStatus(g, st)
			return nil
		},
	}
	cmd.Flags().Var(&wait, "wait", "wait for the pod to exit (a duration: at most that long)")
	cmd.Flags().Lookup("wait").NoOptDefVal = "true"
	cmd.Flags().Var(&waitReady, "wait-ready", "wait for the pod to be running (a duration: at most that long)")
	cmd.Flags().Lookup("wait-ready").NoOptDefVal = "true"
	cmd.Flags().StringVar(&format, "format", "", "output format: tabbed (default), json or json-pretty")
	cmd.Flags().StringVar(&uuidFile, "uuid-file", "", "read the pod UUID from this file (as written by --uuid-file-save)")
	return cmd
}

// printStatus writes rkt's key=value status lines; like rkt, it shows the
// network and process lines only for the states they mean something in.
func printStatus(g *globalOptions, st *stage0.Status) {
	g.printf("state=%s\n", st.State)
	g.printf("created=%s\n", ago(st.CreatedAt, true))
	if !st.StartedAt.IsZero() {
		g.printf("started=%s\n", ago(st.StartedAt, true))
	}
	if st.State == stage0.Running {
		g.printf("networks=%s\n", printable(networksColumn(st.Networks)))
	}
	if st.State.AfterRun() {
		if st.Pid > 0 {
			g.printf("pid=%d\n", st.Pid)
		}
		g.printf("exited=%t\n", st.State != stage0.Running)
	}
	if k := st.KVM; k != nil {
		// What a kvm pod's VM boots, as its run entrypoint recorded it.
		g.printf("kvm-kernel=%s\n", printable(k.KernelPath))
		g.printf("kvm-kernel-kind=%s\n", printable(k.KernelKind))
		g.printf("kvm-kernel-version=%s\n", printable(k.KernelVersion))
		if k.Modules > 0 {
			g.printf("kvm-kernel-modules=%d\n", k.Modules)
		}
		g.printf("kvm-accel=%s\n", printable(k.Accel))
	}
	for _, a := range st.Apps {
		if a.ExitCode != nil {
			g.printf("app-%s=%d\n", printable(a.Name), *a.ExitCode)
		}
	}
}
