package main

import (
	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/stage0"
)

func newEnterCommand(g *globalOptions) *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "enter [--app=NAME] UUID [CMD [ARGS...]]",
		Short: "Run a command in a running pod's app (default /bin/sh)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := getPod(g, args[0])
			if err != nil {
				return err
			}
			command := args[1:]
			if len(command) == 0 {
				command = []string{"/bin/sh"}
			}
			if err := g.handOverSignals(); err != nil {
				return err
			}
			return stage0.Enter(p, app, command)
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVar(&app, "app", "", "the app to enter (needed when the pod has several)")
	return cmd
}

func newStopCommand(g *globalOptions) *cobra.Command {
	var force bool
	var uuidFile string
	cmd := &cobra.Command{
		Use:   "stop [--force] UUID...",
		Short: "Stop running pods",
		RunE: func(cmd *cobra.Command, args []string) error {
			return forEachPod(g, cmd, args, uuidFile, func(p *stage0.Pod) error {
				if p.State != stage0.Running && p.State.AfterRun() {
					// As rkt: stopping what has stopped is no error, so a
					// unit's ExecStop may run after its app has exited.
					g.printf("pod %q is already stopped\n", p.UUID)
					return errAlreadyDone
				}
				return stage0.Stop(p, force)
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "kill the pod instead of asking it to stop")
	cmd.Flags().StringVar(&uuidFile, "uuid-file", "", "read the pod UUID from this file")
	return cmd
}
