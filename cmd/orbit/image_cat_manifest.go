package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"
)

func newImageCatManifestCommand(g *globalOptions) *cobra.Command {
	pretty := true
	cmd := &cobra.Command{
		Use:   "cat-manifest ID|NAME",
		Short: "Print the manifest of a stored image",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, img, err := g.resolveImage(args[0])
			if err != nil {
				return err
			}
			var data []byte
			if pretty {
				data, err = json.MarshalIndent(img.Manifest, "", "\t")
			} else {
				data, err = json.Marshal(img.Manifest)
			}
			if err != nil {
				return fmt.Errorf("image %s: %w", img.ID, err)
			}
			g.printf("%s\n", data)
			return nil
		},
	}
	cmd.Flags().BoolVar(&pretty, "pretty-print", true, "indent the manifest")
	return cmd
}
