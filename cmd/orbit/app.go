package main

import (
	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/stage0"
)

// newAppCommand groups the commands that change a sandbox's apps while it
// runs (rkt's app commands).
func newAppCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "app",
		Short: "Start a sandbox pod and add, start, stop and remove its apps while it runs",
	}
	for _, add := range []func(*globalOptions) *cobra.Command{
		newAppSandboxCommand,
		newAppAddCommand,
		newAppStartCommand,
		newAppStopCommand,
		newAppRmCommand,
		newAppListCommand,
		newAppStatusCommand,
	} {
		cmd.AddCommand(add(g))
	}
	return cmd
}

// appFlag is --app=NAME, which names the app of the pod a command is for.
type appFlag struct{ name string }

func (a *appFlag) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.name, "app", "", "the app's name in the pod (required)")
}

func (a *appFlag) check(cmd *cobra.Command) error {
	if a.name == "" {
		return usageErr(cmd, "--app is required")
	}
	return nil
}

func (g *globalOptions) appConfig() stage0.AppConfig {
	return stage0.AppConfig{Debug: g.Debug, Log: g.Log}
}
