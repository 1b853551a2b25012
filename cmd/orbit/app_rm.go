package main

import (
	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/stage0"
)

func newAppRmCommand(g *globalOptions) *cobra.Command {
	return newAppChangeCommand(g, "rm UUID --app=NAME",
		"Remove a stopped app and its root filesystem from a sandbox",
		"Remove the app NAME, which must not be running, from the running sandbox UUID:\nfrom the pod manifest, from the pod's supervisor, and its files.",
		stage0.RemoveApp)
}
