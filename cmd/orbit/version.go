package main

import (
	"fmt"
	"runtime"

	"github.com/appc/spec/schema"
	"github.com/spf13/cobra"
)

// version is set at link time (-ldflags "-X main.version=...").
var version = "0.1.0+dev"

func newVersionCommand(g *globalOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and exit",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(g.Stdout, "orbit Version: %s\nappc Version: %s\nGo Version: %s\nGo OS/Arch: %s/%s\n",
				version, schema.AppContainerVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		},
	}
}
