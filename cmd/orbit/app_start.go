package main

import (
	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/stage0"
)

func newAppStartCommand(g *globalOptions) *cobra.Command {
	var a appFlag
	cmd := &cobra.Command{
		Use:   "start UUID --app=NAME",
		Short: "Start a created or exited app of a running sandbox",
		Long:  "Start the app NAME of the running sandbox UUID: one that was added and not\nstarted yet, or one that has exited (it keeps its root filesystem).",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.check(cmd); err != nil {
				return err
			}
			p, err := getPod(g, args[0])
			if err != nil {
				return err
			}
			return stage0.StartApp(cmd.Context(), p, a.name, g.appConfig())
		},
	}
	a.addFlags(cmd)
	return cmd
}
