//go:build !manpages

package main

import "github.com/spf13/cobra"

// addManPagesCommand is a no-op in the orbit that is installed: the
// man-pages build step is compiled in with the manpages tag only (see
// manpages.go).
func addManPagesCommand(*cobra.Command) {}
