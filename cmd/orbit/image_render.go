package main

import (
	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/aci"
	"github.com/orbit-containers/orbit/store"
)

func newImageRenderCommand(g *globalOptions) *cobra.Command {
	o := &imageDirOptions{}
	var verify bool
	cmd := &cobra.Command{
		Use:   "render [--overwrite] [--rootfs-only] [--verify] ID|NAME DIR",
		Short: "Render a stored image with its dependencies into a directory",
		Long: `Render a stored image into DIR as an app would see it: its dependencies laid
under it, honouring each image's path whitelist. DIR holds the image's
manifest and rootfs, or with --rootfs-only the root filesystem alone. It is
a plain copy, so 'rm -rf DIR' cleans up. Images were verified against their
IDs when they entered the store; --verify hashes each one again while it is
rendered and fails if one no longer matches.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImageToDir(g, o, args[0], args[1], "rendering", func(s *store.Store, id, tmp string) error {
				if layered, err := s.FlattenLayered(cmd.Context(), id, tmp); layered || err != nil {
					return err
				}
				if err := s.CheckRenderable(id); err != nil {
					return err
				}
				_, err := aci.Render(s, id, tmp, aci.RenderOptions{Verify: verify})
				return err
			})
		},
	}
	o.addFlags(cmd)
	cmd.Flags().BoolVar(&verify, "verify", false, "hash every image again while rendering and fail if one no longer matches its ID")
	return cmd
}
