//go:build manpages

package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// addManPagesCommand adds the man-pages command, which writes a man page
// per command, generated from the command tree itself so the pages say
// what the binary does; `make man` builds orbit with the manpages tag and
// runs it. Hidden: it is a build step, not a user command. It is left out
// of the orbit that is installed: the man-page generator's packages
// (cobra/doc, md2man, blackfriday, a YAML encoder) build tables at
// package initialisation, which every orbit command would pay for at
// start-up (about 2.5 ms).
func addManPagesCommand(root *cobra.Command) {
	root.AddCommand(&cobra.Command{
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
	})
}
