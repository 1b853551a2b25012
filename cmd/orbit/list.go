package main

import (
	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/stage0"
)

func newListCommand(g *globalOptions) *cobra.Command {
	var full, noLegend, quiet bool
	var format string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List pods",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := parseFormat(format)
			if err != nil {
				return err
			}
			pods, err := stage0.List(g.podsDir())
			if err != nil {
				return err
			}
			var statuses []*stage0.Status
			all, errs := stage0.ReadStatuses(pods)
			for i, st := range all {
				if errs[i] != nil {
					g.Log.Warn("skipping pod", "pod", pods[i].UUID, "err", errs[i])
					continue
				}
				statuses = append(statuses, st)
			}
			if f != formatTabbed {
				out := []podJSON{}
				for _, st := range statuses {
					out = append(out, toPodJSON(st))
				}
				return writeJSONOut(g.Stdout, f, out)
			}
			if quiet {
				for _, st := range statuses {
					g.printf("%s\n", st.UUID)
				}
				return nil
			}
			header := []string{"UUID", "APP", "IMAGE NAME", "STATE", "CREATED", "STARTED", "NETWORKS"}
			if full {
				header = []string{"UUID", "APP", "IMAGE NAME", "IMAGE ID", "STATE", "CREATED", "STARTED", "NETWORKS"}
			}
			t := newTable(g.Stdout, header, noLegend)
			for _, st := range statuses {
				pj := toPodJSON(st)
				if len(pj.Apps) == 0 {
					pj.Apps = []appJSON{{Name: "-", ImageName: "-"}}
				}
				for i, a := range pj.Apps {
					id, state, created, started, nets := shortUUID(st.UUID, full), st.State.String(), ago(st.CreatedAt, full), ago(st.StartedAt, full), printable(networksColumn(st.Networks))
					if i > 0 && !noLegend {
						// For people, a pod's further apps are rows
						// below it; scripts get every row whole.
						id, state, created, started, nets = "", "", "", "", ""
					}
					row := []string{id, printable(a.Name), printable(a.ImageName)}
					if full {
						row = append(row, printable(a.ImageID))
					}
					t.row(append(row, state, created, started, nets)...)
				}
			}
			return t.flush()
		},
	}
	cmd.Flags().BoolVar(&full, "full", false, "show full UUIDs, image IDs and absolute times")
	cmd.Flags().BoolVar(&noLegend, "no-legend", false, "for scripts: no header line, one row per app with every field, fields separated by one tab")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the pods' full UUIDs, one a line")
	cmd.Flags().StringVar(&format, "format", "", "output format: tabbed (default), json or json-pretty")
	return cmd
}
