package main

import (
	"context"

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

// newAppChangeCommand is app start, stop and rm: one app of a running
// sandbox, named with --app, changed through stage0.
func newAppChangeCommand(g *globalOptions, use, short, long string, change func(context.Context, *stage0.Pod, string, stage0.AppConfig) error) *cobra.Command {
	var a appFlag
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.check(cmd); err != nil {
				return err
			}
			p, err := getPod(g, args[0])
			if err != nil {
				return err
			}
			return change(cmd.Context(), p, a.name, g.appConfig())
		},
	}
	a.addFlags(cmd)
	return cmd
}
