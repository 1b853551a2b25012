package main

import (
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/aci"
	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/store"
)

func newImageExportCommand(g *globalOptions) *cobra.Command {
	var overwrite bool
	cmd := &cobra.Command{
		Use:   "export [--overwrite] ID|NAME FILE.aci",
		Short: "Write a stored image out as an uncompressed ACI",
		Long: `Write a stored image to FILE.aci exactly as the store keeps it: the
uncompressed ACI whose SHA-512 is the image ID. An OCI image, which the
store keeps as layers, is written as the ACI of its layers flattened (an
image with an ID of its own). No network is used.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, img, err := g.resolveImage(args[0])
			if err != nil {
				return err
			}
			export := exportImage
			if layered, err := s.Layered(img.ID); err != nil {
				return err
			} else if layered {
				export = func(s *store.Store, id, dst string, overwrite bool) error {
					return exportLayered(cmd.Context(), s, id, dst, overwrite)
				}
			}
			if err := export(s, img.ID, args[1], overwrite); err != nil {
				return fmt.Errorf("exporting image %s (%s): %w", img.ID, imageName(img), err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&overwrite, "overwrite", false, "replace FILE if it exists")
	return cmd
}

// exportImage copies a blob to dst through a temp file beside it, checking
// the copy against the image ID, so dst is either the whole image or
// untouched.
func exportImage(s *store.Store, id, dst string, overwrite bool) error {
	if !overwrite {
		// Checked before reading the blob too, to fail early.
		if _, err := os.Lstat(dst); err == nil {
			return withOverwriteHint(fmt.Errorf("%s: %w", dst, errdefs.ErrAlreadyExists))
		}
	}
	blob, err := s.OpenBlob(id)
	if err != nil {
		return err
	}
	defer blob.Close()
	return withOverwriteHint(atomicfile.Create(dst, 0o644, overwrite, func(w io.Writer) error {
		h := sha512.New()
		if _, err := io.Copy(io.MultiWriter(w, h), blob); err != nil {
			return err
		}
		if got := "sha512-" + hex.EncodeToString(h.Sum(nil)); got != id {
			return fmt.Errorf("the stored image is corrupt: it hashes to %s: %w", store.ShortID(got), errdefs.ErrInvalid)
		}
		return nil
	}))
}

// withOverwriteHint tells the user how to replace an output that exists.
func withOverwriteHint(err error) error {
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		return fmt.Errorf("%w (use --overwrite to replace it)", err)
	}
	return err
}

// exportLayered writes a layered (OCI) image as an ACI: its layers
// flattened into a temp directory of the store, then written out.
func exportLayered(ctx context.Context, s *store.Store, id, dst string, overwrite bool) error {
	if !overwrite {
		if _, err := os.Lstat(dst); err == nil {
			return withOverwriteHint(fmt.Errorf("%s: %w", dst, errdefs.ErrAlreadyExists))
		}
	}
	tmpDir := filepath.Join(s.Dir(), "tmp")
	if err := os.MkdirAll(tmpDir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(tmpDir, "export-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if _, err := s.FlattenLayered(ctx, id, tmp); err != nil {
		return err
	}
	m, err := s.Manifest(id)
	if err != nil {
		return err
	}
	return withOverwriteHint(atomicfile.Create(dst, 0o644, overwrite, func(w io.Writer) error {
		return aci.Write(ctx, w, m, filepath.Join(tmp, aci.RootfsName), aci.WriteOptions{})
	}))
}
