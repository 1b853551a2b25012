package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/stage0"
)

func newStatusCommand(g *globalOptions) *cobra.Command {
	var wait, waitReady bool
	var format string
	cmd := &cobra.Command{
		Use:   "status [--wait] [--format=json] UUID",
		Short: "Show the status of a pod",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := parseFormat(format)
			if err != nil {
				return err
			}
			p, err := getPod(g, args[0])
			if err != nil {
				return err
			}
			if wait {
				if err := p.Wait(); err != nil {
					return err
				}
			}
			if waitReady {
				for p.State == stage0.Preparing || p.State == stage0.Prepared || p.State == stage0.Embryo {
					time.Sleep(100 * time.Millisecond)
					if p, err = getPod(g, p.UUID); err != nil {
						return err
					}
				}
			}
			st, err := p.ReadStatus()
			if err != nil {
				return err
			}
			if f != formatTabbed {
				return writeJSONOut(g.Stdout, f, toPodJSON(st))
			}
			fmt.Fprintf(g.Stdout, "state=%s\n", st.State)
			fmt.Fprintf(g.Stdout, "created=%s\n", ago(st.CreatedAt, true))
			if !st.StartedAt.IsZero() {
				fmt.Fprintf(g.Stdout, "started=%s\n", ago(st.StartedAt, true))
			}
			fmt.Fprintf(g.Stdout, "networks=\n")
			if st.Pid > 0 {
				fmt.Fprintf(g.Stdout, "pid=%d\n", st.Pid)
			}
			fmt.Fprintf(g.Stdout, "exited=%t\n", st.State.AfterRun() && st.State != stage0.Running)
			for _, a := range st.Apps {
				if a.ExitCode != nil {
					fmt.Fprintf(g.Stdout, "app-%s=%d\n", a.Name, *a.ExitCode)
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the pod to exit")
	cmd.Flags().BoolVar(&waitReady, "wait-ready", false, "wait for the pod to be started")
	cmd.Flags().StringVar(&format, "format", "", "output format: tabbed (default), json or json-pretty")
	return cmd
}
