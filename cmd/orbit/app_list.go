package main

import (
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/stage0"
)

func newAppListCommand(g *globalOptions) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "list UUID",
		Short: "List the apps of a pod and their states",
		Long: `List the apps of a pod, as its directory records them, with their state
(created, running or exited), exit code, start and finish times. It works
on a pod that has exited too.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := parseFormat(format)
			if err != nil {
				return err
			}
			p, err := getPod(g, args[0])
			if err != nil {
				return err
			}
			if !p.State.AfterRun() {
				return fmt.Errorf("pod %s is %s: it has not run", p.UUID, p.State)
			}
			apps, err := p.Apps()
			if err != nil {
				return err
			}
			if f != formatTabbed {
				if apps == nil {
					apps = []stage0.AppInfo{}
				}
				return writeJSONOut(g.Stdout, f, apps)
			}
			w := tabwriter.NewWriter(g.Stdout, 0, 8, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tSTATE\tEXIT\tSTARTED\tFINISHED")
			for _, a := range apps {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", a.Name, a.State, exitText(a.ExitCode), timeText(a.StartedAt), timeText(a.FinishedAt))
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&format, "format", "", "output format: tabbed, json or json-pretty")
	return cmd
}

func exitText(code *int) string {
	if code == nil {
		return "-"
	}
	return strconv.Itoa(*code)
}

func timeText(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.RFC3339)
}
