package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// newManPagesCommand writes a man page per command, generated from the
// command tree itself so the pages say what the binary does; `make` and
// `make install` run it. Hidden: it is a build step, not a user command.
func newManPagesCommand(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:    "man-pages DIR",
		Short:  "Write orbit's man pages (section 1) into DIR",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			// The date is SOURCE_DATE_EPOCH's when set (reproducible
			// builds), else today's.
			header := &doc.GenManHeader{Title: "ORBIT", Section: "1", Source: "orbit " + version, Manual: "orbit manual"}
			root.DisableAutoGenTag = true
			if err := doc.GenManTree(root, header, args[0]); err != nil {
				return fmt.Errorf("writing man pages: %w", err)
			}
			return nil
		},
	}
}
