package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

func newLogsCommand(g *globalOptions) *cobra.Command {
	var app string
	cmd := &cobra.Command{
		Use:   "logs UUID [--app=NAME]",
		Short: "Print the output a pod or one of its apps keeps in files",
		Long: `Print what orbit keeps of a pod's output: with --app, the log files the
app was added with (orbit app add --log, --stdout, --stderr); without, the
output of a sandbox started in the background. A pod run by orbit run
writes where its command's output goes; under systemd that is the unit's
journal (journalctl -u UNIT).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := getPod(g, args[0])
			if err != nil {
				return err
			}
			files, err := p.LogFiles(app)
			if err != nil {
				return err
			}
			for _, path := range files {
				f, err := os.Open(path)
				if err != nil {
					return fmt.Errorf("log of pod %s: %w", p.UUID, err)
				}
				_, err = io.Copy(g.Stdout, f)
				f.Close()
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&app, "app", "", "the app whose log files to print")
	return cmd
}
