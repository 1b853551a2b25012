package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/orbit-containers/orbit/aci"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage0"
	"github.com/orbit-containers/orbit/store"
)

// exportOptions are `orbit export`'s flags.
type exportOptions struct {
	App       string
	Overwrite bool
}

func (o *exportOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.App, "app", "", "the app to export (needed when the pod has several)")
	f.BoolVar(&o.Overwrite, "overwrite", false, "replace FILE.aci if it exists")
}

func newExportCommand(g *globalOptions) *cobra.Command {
	opts := &exportOptions{}
	cmd := &cobra.Command{
		Use:   "export [--app=NAME] [--overwrite] UUID FILE.aci",
		Short: "Export an exited pod's app to an ACI",
		Long: `Write an exited pod's app to FILE.aci: its root filesystem as the app
left it (the image's files with the app's changes) and its image manifest,
as a gzip-compressed ACI that orbit fetch imports and orbit run runs.
The app's volumes are not part of it.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExport(cmd, g, opts, args[0], args[1])
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runExport(cmd *cobra.Command, g *globalOptions, opts *exportOptions, id, dest string) error {
	if filepath.Ext(dest) != ".aci" {
		return usageErr(cmd, fmt.Sprintf("export writes an ACI: FILE must end in .aci (given %s)", dest))
	}
	limits, err := g.storeLimits()
	if err != nil {
		return err
	}
	maxSize := limits.MaxImageSize
	if maxSize <= 0 {
		maxSize = store.DefaultMaxImageSize
	}
	p, err := getPod(g, id)
	if err != nil {
		return err
	}
	err = stage0.ExportApp(cmd.Context(), p, stage0.ExportConfig{App: opts.App, Dest: dest, Overwrite: opts.Overwrite, MaxSize: maxSize})
	switch {
	case errors.Is(err, aci.ErrTooLarge):
		return fmt.Errorf("%w (an image may be at most %s: maxImageSize in store.json, or ORBIT_MAX_IMAGE_SIZE)", err, store.FormatSize(maxSize))
	case errors.Is(err, stage0.ErrAppNotNamed):
		return fmt.Errorf("%w (name it with --app)", err)
	case errors.Is(err, errdefs.ErrAlreadyExists):
		return withOverwriteHint(err)
	}
	return err
}
