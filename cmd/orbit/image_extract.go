package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/aci"
	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/store"
)

// imageDirOptions are the flags of `orbit image extract` and `render`.
type imageDirOptions struct {
	Overwrite  bool
	RootfsOnly bool
}

func (o *imageDirOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&o.Overwrite, "overwrite", false, "replace DIR if it exists")
	cmd.Flags().BoolVar(&o.RootfsOnly, "rootfs-only", false, "write only the root filesystem, directly into DIR")
}

func newImageExtractCommand(g *globalOptions) *cobra.Command {
	o := &imageDirOptions{}
	cmd := &cobra.Command{
		Use:   "extract [--overwrite] [--rootfs-only] ID|NAME DIR",
		Short: "Extract a stored image, without its dependencies, into a directory",
		Long: `Extract a stored image into DIR: DIR/manifest and DIR/rootfs, or with
--rootfs-only the root filesystem alone. Dependencies are not included; use
'orbit image render' for the image as an app would see it.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runImageToDir(g, o, args[0], args[1], "extracting", func(s *store.Store, id, tmp string) error {
				if layered, err := s.FlattenLayered(cmd.Context(), id, tmp); layered || err != nil {
					return err
				}
				blob, err := s.OpenBlob(id)
				if err != nil {
					return err
				}
				defer blob.Close()
				return aci.Extract(blob, tmp, nil)
			})
		},
	}
	o.addFlags(cmd)
	return cmd
}

// runImageToDir resolves ref and has fill write the image into a fresh
// directory beside dir, which then replaces dir: an interrupted run leaves
// dir as it was.
func runImageToDir(g *globalOptions, o *imageDirOptions, ref, dir, verb string, fill func(s *store.Store, id, tmp string) error) error {
	s, img, err := g.resolveImage(ref)
	if err != nil {
		return err
	}
	if err := writeImageDir(s, img.ID, dir, o, fill); err != nil {
		return fmt.Errorf("%s image %s (%s): %w", verb, img.ID, imageName(img), err)
	}
	return nil
}

func writeImageDir(s *store.Store, id, dir string, o *imageDirOptions, fill func(s *store.Store, id, tmp string) error) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if abs == "/" || filepath.Base(filepath.Clean(dir)) == ".." || filepath.Clean(dir) == "." {
		return fmt.Errorf("refusing to write the image over %s: %w", dir, errdefs.ErrInvalid)
	}
	dir = abs
	if _, err := os.Lstat(dir); err == nil && !o.Overwrite {
		return fmt.Errorf("%s exists (use --overwrite to replace it): %w", dir, errdefs.ErrAlreadyExists)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	if err := fill(s, id, tmp); err != nil {
		return err
	}
	src := tmp
	if o.RootfsOnly {
		src = filepath.Join(tmp, aci.RootfsName)
	}
	if o.Overwrite {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	if err := os.Rename(src, dir); err != nil {
		if os.IsExist(err) {
			return fmt.Errorf("%s exists (use --overwrite to replace it): %w", dir, errdefs.ErrAlreadyExists)
		}
		return err
	}
	return atomicfile.SyncDir(filepath.Dir(dir))
}
