package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func newAppStatusCommand(g *globalOptions) *cobra.Command {
	var a appFlag
	var format string
	cmd := &cobra.Command{
		Use:   "status UUID --app=NAME",
		Short: "Show the state of one app of a pod",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.check(cmd); err != nil {
				return err
			}
			f, err := parseFormat(format)
			if err != nil {
				return err
			}
			p, err := getPod(g, args[0])
			if err != nil {
				return err
			}
			apps, err := p.Apps()
			if err != nil {
				return err
			}
			for _, app := range apps {
				if app.Name != a.name {
					continue
				}
				if f != formatTabbed {
					return writeJSONOut(g.Stdout, f, app)
				}
				g.printf("name=%s\nstate=%s\nimage_id=%s\n", app.Name, app.State, app.ImageID)
				if app.Pid != 0 {
					g.printf("pid=%d\n", app.Pid)
				}
				if app.ExitCode != nil {
					g.printf("exit_code=%d\n", *app.ExitCode)
				}
				if !app.StartedAt.IsZero() {
					g.printf("started_at=%s\n", timeText(app.StartedAt))
				}
				if !app.FinishedAt.IsZero() {
					g.printf("finished_at=%s\n", timeText(app.FinishedAt))
				}
				return nil
			}
			return fmt.Errorf("pod %s has no app %q: %w", p.UUID, a.name, errdefs.ErrNotFound)
		},
	}
	a.addFlags(cmd)
	cmd.Flags().StringVar(&format, "format", "", "output format: tabbed, json or json-pretty")
	return cmd
}
