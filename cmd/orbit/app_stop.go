package main

import (
	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/stage0"
)

func newAppStopCommand(g *globalOptions) *cobra.Command {
	var a appFlag
	cmd := &cobra.Command{
		Use:   "stop UUID --app=NAME",
		Short: "Stop a running app of a sandbox",
		Long:  "Stop the app NAME of the running sandbox UUID: SIGTERM, then SIGKILL to all\nof its processes after the pod's grace period (10s). orbit returns once the\napp's exit status is recorded. The pod goes on running.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.check(cmd); err != nil {
				return err
			}
			p, err := getPod(g, args[0])
			if err != nil {
				return err
			}
			return stage0.StopApp(cmd.Context(), p, a.name, g.appConfig())
		},
	}
	a.addFlags(cmd)
	return cmd
}
