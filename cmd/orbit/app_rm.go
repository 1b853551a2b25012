package main

import (
	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/stage0"
)

func newAppRmCommand(g *globalOptions) *cobra.Command {
	var a appFlag
	cmd := &cobra.Command{
		Use:   "rm UUID --app=NAME",
		Short: "Remove a stopped app and its root filesystem from a sandbox",
		Long:  "Remove the app NAME, which must not be running, from the running sandbox UUID:\nfrom the pod manifest, from the pod's supervisor, and its files.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.check(cmd); err != nil {
				return err
			}
			p, err := getPod(g, args[0])
			if err != nil {
				return err
			}
			return stage0.RemoveApp(cmd.Context(), p, a.name, g.appConfig())
		},
	}
	a.addFlags(cmd)
	return cmd
}
