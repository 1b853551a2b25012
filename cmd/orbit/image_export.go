package main

import (
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/errdefs"
	"github.com/orbit-containers/orbit/store"
)

func newImageExportCommand(g *globalOptions) *cobra.Command {
	var overwrite bool
	cmd := &cobra.Command{
		Use:   "export [--overwrite] ID|NAME FILE.aci",
		Short: "Write a stored image out as an uncompressed ACI",
		Long: `Write a stored image to FILE.aci exactly as the store keeps it: the
uncompressed ACI whose SHA-512 is the image ID. No network is used.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := store.Open(g.storeDir())
			if err != nil {
				return err
			}
			img, err := s.Resolve(args[0])
			if err != nil {
				return err
			}
			if err := exportImage(s, img.ID, args[1], overwrite); err != nil {
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
		if _, err := os.Lstat(dst); err == nil {
			return fmt.Errorf("%s exists (use --overwrite to replace it): %w", dst, errdefs.ErrAlreadyExists)
		}
	}
	blob, err := s.OpenBlob(id)
	if err != nil {
		return err
	}
	defer blob.Close()
	dir := filepath.Dir(dst)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dst)+".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha512.New()
	if _, err := io.Copy(io.MultiWriter(tmp, h), blob); err != nil {
		return err
	}
	if got := "sha512-" + hex.EncodeToString(h.Sum(nil)); got != id {
		return fmt.Errorf("the stored image is corrupt: it hashes to %s: %w", store.ShortID(got), errdefs.ErrInvalid)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if overwrite {
		err = os.Rename(tmp.Name(), dst)
	} else if err = os.Link(tmp.Name(), dst); errors.Is(err, os.ErrExist) {
		err = fmt.Errorf("%s exists (use --overwrite to replace it): %w", dst, errdefs.ErrAlreadyExists)
	}
	if err != nil {
		return err
	}
	return syncParent(dst)
}

// syncParent makes a new entry in dst's directory durable.
func syncParent(dst string) error {
	d, err := os.Open(filepath.Dir(dst))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
