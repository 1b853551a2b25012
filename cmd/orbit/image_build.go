package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/orbit-containers/orbit/aci"
	"github.com/orbit-containers/orbit/internal/errdefs"
)

// imageBuildOptions are `orbit image build`'s flags.
type imageBuildOptions struct {
	Overwrite   bool
	Compression string
}

func (o *imageBuildOptions) AddFlags(f *pflag.FlagSet) {
	f.BoolVar(&o.Overwrite, "overwrite", false, "replace OUTPUT if it exists")
	f.StringVar(&o.Compression, "compression", "gzip", "compression of the image: gzip or none")
}

func newImageBuildCommand(g *globalOptions) *cobra.Command {
	opts := &imageBuildOptions{}
	cmd := &cobra.Command{
		Use:   "build ROOTFS_DIR MANIFEST_FILE OUTPUT.aci",
		Short: "Build an ACI from a root filesystem directory and an image manifest",
		Long: `Build an App Container Image from ROOTFS_DIR and the image manifest in
MANIFEST_FILE, and write it to OUTPUT.aci. The output is deterministic:
the same files and manifest give the same bytes. This is orbit's
equivalent of 'actool build'.`,
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImageBuild(cmd.Context(), g, opts, args[0], args[1], args[2])
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runImageBuild(ctx context.Context, g *globalOptions, opts *imageBuildOptions, rootfs, manifestPath, output string) error {
	compression, err := aci.ParseCompression(opts.Compression)
	if err != nil {
		return fmt.Errorf("--compression: %w", err)
	}
	fi, err := os.Stat(rootfs)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s: not a directory: %w", rootfs, errdefs.ErrInvalid)
	}
	f, err := os.Open(manifestPath)
	if err != nil {
		return err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, aci.MaxManifestSize+1))
	if err != nil {
		return fmt.Errorf("manifest %s: %w", manifestPath, err)
	}
	im, err := aci.DecodeManifest(data)
	if err != nil {
		return fmt.Errorf("manifest %s: %w", manifestPath, err)
	}
	if err := aci.WriteFile(ctx, output, im, rootfs, aci.WriteOptions{Compression: compression}, opts.Overwrite); err != nil {
		return withOverwriteHint(err)
	}
	g.Log.Debug("image built", "output", output, "name", im.Name)
	return nil
}
