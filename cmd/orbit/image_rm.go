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
with the rendered trees made from them that no pod uses. An image named
twice (by the same ID, or by ID and name) is removed once, and exits 0 as
in rkt. It exits non-zero if any image could not be found or removed, after
trying all of them.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := g.openStore()
			if err != nil {
				return err
			}
			inUse := treeInUse(g)
			removed, failed := 0, 0
			// Every argument is resolved before anything is removed, so
			// an image named twice (by the same ID, or by ID and name) is
			// removed once and is not then "not found", as in rkt.
			type target struct {
				id, name string
			}
			var targets []target
			seen := map[string]bool{}
			for _, ref := range args {
				img, err := s.Resolve(ref)
				if err != nil {
					g.errorf("%v", err)
					failed++
					continue
				}
				if !seen[img.ID] {
					seen[img.ID] = true
					targets = append(targets, target{img.ID, imageName(img)})
				}
			}
			for _, tg := range targets {
				if err := s.Remove(cmd.Context(), tg.id, inUse); err != nil {
					g.errorf("%v", err)
					failed++
					continue
				}
				removed++
				g.printf("successfully removed aci for image: %q (%q)\n", tg.id, tg.name)
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
