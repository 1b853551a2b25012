package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/stage0"
)

func newListCommand(g *globalOptions) *cobra.Command {
	var full, noLegend bool
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
			for _, p := range pods {
				st, err := p.ReadStatus()
				if err != nil {
					g.Log.Warn("skipping pod", "pod", p.UUID, "err", err)
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
			tw := tabwriter.NewWriter(g.Stdout, 0, 8, 1, '\t', 0)
			if !noLegend {
				if full {
					fmt.Fprintln(tw, "UUID\tAPP\tIMAGE NAME\tIMAGE ID\tSTATE\tCREATED\tSTARTED\tNETWORKS")
				} else {
					fmt.Fprintln(tw, "UUID\tAPP\tIMAGE NAME\tSTATE\tCREATED\tSTARTED\tNETWORKS")
				}
			}
			for _, st := range statuses {
				pj := toPodJSON(st)
				if len(pj.Apps) == 0 {
					pj.Apps = []appJSON{{Name: "-", ImageName: "-"}}
				}
				for i, a := range pj.Apps {
					id, state, created, started, nets := shortUUID(st.UUID, full), st.State.String(), ago(st.CreatedAt, full), ago(st.StartedAt, full), printable(networksColumn(st.Networks))
					if i > 0 {
						id, state, created, started, nets = "", "", "", "", ""
					}
					if full {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id, printable(a.Name), printable(a.ImageName), printable(a.ImageID), state, created, started, nets)
					} else {
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", id, printable(a.Name), printable(a.ImageName), state, created, started, nets)
					}
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&full, "full", false, "show full UUIDs, image IDs and absolute times")
	cmd.Flags().BoolVar(&noLegend, "no-legend", false, "leave out the header line")
	cmd.Flags().StringVar(&format, "format", "", "output format: tabbed (default), json or json-pretty")
	return cmd
}
