package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/orbit-containers/orbit/fetch"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/builtin"
	"github.com/orbit-containers/orbit/store"
)

// defaultFlavour is the stage1 flavour used when no --stage1-* flag is given.
const defaultFlavour = builtin.Nspawn

// stage1Flags select a pod's stage1 image, as rkt's --stage1-* flags do.
type stage1Flags struct {
	name, url, path, hash, fromDir string
}

func (s *stage1Flags) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&s.name, "stage1-name", "", "stage1 image by name: a built-in flavour (fly, nspawn, kvm) or an image name")
	fs.StringVar(&s.url, "stage1-url", "", "stage1 image by URL")
	fs.StringVar(&s.path, "stage1-path", "", "stage1 image by file path")
	fs.StringVar(&s.hash, "stage1-hash", "", "stage1 image by image ID in the store")
	fs.StringVar(&s.fromDir, "stage1-from-dir", "", "stage1 image by file name in the stage1 images directory (<system-config>/stage1-images)")
}

// check refuses conflicting --stage1-* flags.
func (s *stage1Flags) check() error {
	given := 0
	for _, v := range []string{s.name, s.url, s.path, s.hash, s.fromDir} {
		if v != "" {
			given++
		}
	}
	if given > 1 {
		return fmt.Errorf("give at most one of --stage1-name, --stage1-url, --stage1-path, --stage1-hash, --stage1-from-dir: %w", errdefs.ErrInvalid)
	}
	return nil
}

// flavour is the built-in flavour the flags select, as far as it is known
// without fetching anything; 0 when it is not (an image by URL, path or
// hash), in which case stage0 checks again once the stage1 is resolved.
func (s *stage1Flags) flavour() builtin.Flavour {
	switch {
	case s.name != "":
		fl, _ := builtin.Parse(s.name)
		return fl
	case s.url != "" || s.path != "" || s.hash != "" || s.fromDir != "":
		return 0
	}
	return defaultFlavour
}

// resolve returns the stage1 image ID and its built-in flavour name, if any.
func (s *stage1Flags) resolve(ctx context.Context, g *globalOptions, st *store.Store, f *fetch.Fetcher) (string, string, error) {
	if err := s.check(); err != nil {
		return "", "", err
	}
	builtinImage := func(fl builtin.Flavour) (string, string, error) {
		if !fl.Available() {
			return "", "", fmt.Errorf("the %s stage1 flavour is not available in this version of orbit: %w", fl, errdefs.ErrNotFound)
		}
		id, err := builtin.Install(ctx, st, fl, version)
		return id, fl.String(), err
	}
	switch {
	case s.name != "":
		if fl, ok := builtin.Parse(s.name); ok {
			return builtinImage(fl)
		}
		id, err := f.Fetch(ctx, s.name, fetch.PullNew, "")
		return id, "", stage1Err(s.name, err)
	case s.url != "":
		id, err := f.Fetch(ctx, s.url, fetch.PullNew, "")
		return id, "", stage1Err(s.url, err)
	case s.path != "":
		id, err := f.Fetch(ctx, s.path, fetch.PullNew, "")
		return id, "", stage1Err(s.path, err)
	case s.hash != "":
		img, err := st.Get(s.hash)
		if err != nil {
			return "", "", stage1Err(s.hash, err)
		}
		if fl, ok := builtin.Parse(string(img.Name)); ok {
			return img.ID, fl.String(), nil
		}
		return img.ID, "", nil
	case s.fromDir != "":
		if strings.Contains(s.fromDir, "/") {
			return "", "", fmt.Errorf("--stage1-from-dir takes a file name, not a path: %w", errdefs.ErrInvalid)
		}
		dir, err := g.stage1ImagesDir()
		if err != nil {
			return "", "", err
		}
		path := filepath.Join(dir, s.fromDir)
		if _, err := os.Stat(path); err != nil {
			// rkt's stage1 file names mean orbit's own flavours.
			if fl, ok := builtin.ParseFileName(s.fromDir); ok {
				return builtinImage(fl)
			}
		}
		id, err := f.Fetch(ctx, path, fetch.PullNew, "")
		return id, "", stage1Err(path, err)
	}
	// stage1.d: the default stage1 (name, version, location), as rkt read it.
	conf, err := rktConfigFiles(g, "stage1", "stage1")
	if err != nil {
		return "", "", err
	}
	if name := conf["name"]; name != "" {
		if fl, ok := builtin.Parse(name); ok {
			return builtinImage(fl)
		}
		ref := name
		if v := conf["version"]; v != "" {
			ref += ":" + v
		}
		if img, err := st.Resolve(ref); err == nil {
			return img.ID, "", nil
		}
		if loc := conf["location"]; loc != "" {
			id, err := f.Fetch(ctx, loc, fetch.PullNew, "")
			return id, "", stage1Err(loc, err)
		}
		id, err := f.Fetch(ctx, ref, fetch.PullNew, "")
		return id, "", stage1Err(ref, err)
	}
	return builtinImage(defaultFlavour)
}

func stage1Err(ref string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("stage1 image %s: %w", ref, err)
}
