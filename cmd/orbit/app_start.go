package main

import (
	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/stage0"
)

func newAppStartCommand(g *globalOptions) *cobra.Command {
	return newAppChangeCommand(g, "start UUID --app=NAME",
		"Start a created or exited app of a running sandbox",
		"Start the app NAME of the running sandbox UUID: one that was added and not\nstarted yet, or one that has exited (it keeps its root filesystem).",
		stage0.StartApp)
}
