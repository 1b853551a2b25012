package main

import (
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/stage1/kvm"
)

func newImageGCCommand(g *globalOptions) *cobra.Command {
	var grace time.Duration
	cmd := &cobra.Command{
		Use:   "gc [--grace-period=DURATION]",
		Short: "Collect unused rendered trees, leftovers and images",
		Long: `Remove the rendered trees no pod uses, what interrupted imports and renders
left behind, the kvm flavour's cached initramfs archives and probe results
not used within the grace period and linked by no pod, and the images not
used within the grace period (with
--grace-period=0s, every image that no orbit command is making a pod from
and that no pod uses a tree of; exited pods count until 'orbit gc' has
removed them). Meant to be run from a timer; it is safe alongside any other
orbit command.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := nonNegative("grace-period", grace); err != nil {
				return err
			}
			s, err := g.openStore()
			if err != nil {
				return err
			}
			inUse := treeInUse(g)
			rep, gcErr := s.GC(cmd.Context(), inUse)
			for _, t := range rep.TreesRemoved {
				g.printf("removed treestore %q\n", t)
			}
			for _, p := range rep.TempRemoved {
				g.printf("removed leftover %q\n", p)
			}
			kvmRemoved, kvmErr := kvm.CollectCache(s.Dir(), time.Now().Add(-grace))
			for _, p := range kvmRemoved {
				g.printf("removed unused kvm cache file %q\n", p)
			}
			gcErr = errors.Join(gcErr, kvmErr)
			for _, id := range rep.BlobsRemoved {
				g.printf("removed unreferenced blob %q\n", id)
			}
			for _, id := range rep.EntriesRemoved {
				g.errorf("image %s had lost its data; removed it from the index", id)
			}
			for _, t := range rep.TreesKept {
				g.Log.Debug("kept tree in use", "tree", t)
			}
			removed, expireErr := s.ExpireImages(cmd.Context(), grace, inUse)
			for _, img := range removed {
				g.printf("successfully removed aci for image: %q (%q)\n", img.ID, imageName(img))
			}
			if len(removed) > 0 {
				g.printf("%d image(s) successfully removed\n", len(removed))
			}
			return errors.Join(gcErr, expireErr)
		},
	}
	cmd.Flags().DurationVar(&grace, "grace-period", 24*time.Hour, "remove images not used for this long")
	return cmd
}
