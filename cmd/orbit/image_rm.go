package main

import (
	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/stage1/contract"
)

func newImageRmCommand(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rm ID|NAME...",
		Short: "Remove images from the local store",
		Long: `Remove images, given by ID, ID prefix or name[:version], from the local store,
with the rendered trees made from them that no pod uses. It exits non-zero
if any image could not be removed, after trying all of them.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openStore()
			if err != nil {
				return err
			}
			inUse := treeInUse(g)
			removed, failed := 0, 0
			done := map[string]bool{}
			for _, ref := range args {
				img, err := s.Resolve(ref)
				if err == nil && done[img.ID] {
					continue
				}
				if err == nil {
					err = s.Remove(cmd.Context(), img.ID, inUse)
				}
				if err != nil {
					g.errorf("%v", err)
					failed++
					continue
				}
				done[img.ID] = true
				removed++
				g.printf("successfully removed aci for image: %q (%q)\n", img.ID, imageName(img))
			}
			if removed > 0 {
				g.printf("%d image(s) successfully removed\n", removed)
			}
			// Each failure has had its line, naming its image.
			if failed > 0 {
				return exitError{contract.ExitFailure}
			}
			return nil
		},
	}
	return cmd
}
