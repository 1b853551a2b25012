package main

import (
	"github.com/spf13/cobra"
)

func newImageCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Operate on images in the local store",
		// Unknown subcommands are refused by refuseUnknownSubcommands.
	}
	for _, add := range imageCommandConstructors() {
		cmd.AddCommand(add(g))
	}
	return cmd
}

// imageCommandConstructors lists the `orbit image` subcommands; each lives
// in its own file, image_<name>.go.
func imageCommandConstructors() []func(*globalOptions) *cobra.Command {
	return []func(*globalOptions) *cobra.Command{
		newImageBuildCommand,
		newImageListCommand,
		newImageCatManifestCommand,
		newImageExportCommand,
		newImageExtractCommand,
		newImageRenderCommand,
		newImageRmCommand,
		newImageGCCommand,
	}
}
