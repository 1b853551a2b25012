package main

import (
	"fmt"
	"strings"

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
			if err := checkEnterApp(cmd, p, app); err != nil {
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

// checkEnterApp refuses enter without --app into a pod of several apps,
// naming them.
func checkEnterApp(cmd *cobra.Command, p *stage0.Pod, app string) error {
	if app != "" || p.State != stage0.Running {
		return nil
	}
	st, err := p.ReadStatus()
	if err != nil || len(st.Apps) < 2 {
		return nil
	}
	var names []string
	for _, a := range st.Apps {
		names = append(names, printable(a.Name))
	}
	return usageErr(cmd, fmt.Sprintf("pod %s has %d apps (%s); name one with --app, e.g. 'orbit enter --app=%s %s'",
		shortUUID(p.UUID, false), len(names), strings.Join(names, ", "), names[0], shortUUID(p.UUID, false)))
}
