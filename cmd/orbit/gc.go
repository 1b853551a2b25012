package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage0"
	"github.com/orbit-containers/orbit/store"
)

func newGCCommand(g *globalOptions) *cobra.Command {
	var grace, expirePrepared time.Duration
	var markOnly bool
	cmd := &cobra.Command{
		Use:   "gc",
		Short: "Collect exited and failed pods",
		Long: `Mark exited pods for collection and remove pods marked longer ago than the
grace period, running their stage1's gc entrypoint and unmounting what they
left. Failed preparations and prepared pods older than --expire-prepared go
too. Pods in use by another command are left for a later gc.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := nonNegative("grace-period", grace); err != nil {
				return err
			}
			if err := nonNegative("expire-prepared", expirePrepared); err != nil {
				return err
			}
			err := stage0.GC(cmd.Context(), g.podsDir(), stage0.GCConfig{
				GracePeriod:    grace,
				ExpirePrepared: expirePrepared,
				MarkOnly:       markOnly,
				Debug:          g.Debug,
				Log:            g.Log,
				Out:            g.Stdout,
				Marks:          g.Stderr,
				Exited:         func(uuid string) { unregisterMetadata(cmd.Context(), g, uuid) },
			})
			if markOnly {
				return err
			}
			// Cut downloads too old for a fetch to resume.
			removed, perr := store.ExpirePartials(g.storeDir(), time.Now())
			for _, p := range removed {
				g.printf("removed leftover %q\n", p)
			}
			return errors.Join(err, perr)
		},
	}
	cmd.Flags().DurationVar(&grace, "grace-period", 30*time.Minute, "how long exited pods stay marked before they are removed")
	cmd.Flags().DurationVar(&expirePrepared, "expire-prepared", 24*time.Hour, "how long prepared pods may wait to be run")
	cmd.Flags().BoolVar(&markOnly, "mark-only", false, "only mark exited and failed pods as garbage; remove nothing (for a unit's ExecStopPost)")
	return cmd
}

func newRmCommand(g *globalOptions) *cobra.Command {
	var uuidFile string
	cmd := &cobra.Command{
		Use:   "rm UUID...",
		Short: "Remove pods that are not running",
		RunE: func(cmd *cobra.Command, args []string) error {
			return forEachPod(g, cmd, args, uuidFile, func(p *stage0.Pod) error {
				return stage0.Remove(p, stage0.GCConfig{Debug: g.Debug, Log: g.Log})
			})
		},
	}
	cmd.Flags().StringVar(&uuidFile, "uuid-file", "", "read the pod UUID from this file")
	return cmd
}

func newCatManifestCommand(g *globalOptions) *cobra.Command {
	var pretty bool
	var uuidFile string
	cmd := &cobra.Command{
		Use:   "cat-manifest [--uuid-file=FILE] UUID",
		Short: "Print a pod's manifest",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := oneUUID(cmd, args, uuidFile)
			if err != nil {
				return err
			}
			p, err := getPod(g, id)
			if err != nil {
				return err
			}
			pm, err := p.Manifest()
			if err != nil {
				return err
			}
			f := formatJSON
			if pretty {
				f = formatJSONPretty
			}
			return writeJSONOut(g.Stdout, f, pm)
		},
	}
	cmd.Flags().BoolVar(&pretty, "pretty-print", true, "indent the JSON")
	cmd.Flags().StringVar(&uuidFile, "uuid-file", "", "read the pod UUID from this file")
	return cmd
}

// nonNegative refuses a negative duration flag, which would otherwise mean
// "at once" without saying so.
func nonNegative(flag string, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("--%s=%s: want a duration of zero or more, e.g. 30m or 0s: %w", flag, d, errdefs.ErrInvalid)
	}
	return nil
}
