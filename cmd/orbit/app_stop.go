package main

import (
	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/stage0"
)

func newAppStopCommand(g *globalOptions) *cobra.Command {
	return newAppChangeCommand(g, "stop UUID --app=NAME",
		"Stop a running app of a sandbox",
		"Stop the app NAME of the running sandbox UUID: SIGTERM, then SIGKILL to all\nof its processes after the pod's grace period (10s). orbit returns once the\napp's exit status is recorded. The pod goes on running.",
		stage0.StopApp)
}
