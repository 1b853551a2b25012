package fetch

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// ContainersRegistriesDir is where the containers tools (skopeo, podman,
// buildah) keep their registries.d files, read by orbit too.
const ContainersRegistriesDir = "/etc/containers/registries.d"

// maxRegistriesFile bounds one registries.d file.
const maxRegistriesFile = 1 << 20

// signatureSource is where signatures of images in one namespace are
// found, in containers-registries.d(5)'s terms.
type signatureSource struct {
	// Lookaside is the base URL of "simple signing" signatures
	// (lookaside, or its older name sigstore).
	Lookaside string `yaml:"lookaside"`
	Sigstore  string `yaml:"sigstore"`
	// UseSigstoreAttachments looks for sigstore (cosign) signatures
	// attached to the image in its registry.
	UseSigstoreAttachments *bool `yaml:"use-sigstore-attachments"`
	// Staging locations are for writers; read and ignored.
	LookasideStaging string `yaml:"lookaside-staging"`
	SigstoreStaging  string `yaml:"sigstore-staging"`
}

func (s signatureSource) lookaside() string {
	if s.Lookaside != "" {
		return s.Lookaside
	}
	return s.Sigstore
}

type registriesFile struct {
	DefaultDocker *signatureSource           `yaml:"default-docker"`
	Docker        map[string]signatureSource `yaml:"docker"`
}

// registriesConfig is every registries.d file merged: per namespace
// (REGISTRY[/PATH]) and a default.
type registriesConfig struct {
	defaultDocker *signatureSource
	docker        map[string]signatureSource
}

// loadRegistriesD reads the registries.d directories, lowest precedence
// first: an entry for a namespace (or default-docker) in a later directory
// replaces the same entry of an earlier one. Within one directory a
// namespace named in two files is an error, as containers/image has it.
func loadRegistriesD(dirs ...string) (*registriesConfig, error) {
	cfg := &registriesConfig{docker: map[string]signatureSource{}}
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			return nil, err
		}
		sort.Strings(files)
		seen := map[string]string{}
		var dirDefault *signatureSource
		for _, file := range files {
			f, err := readRegistriesFile(file)
			if err != nil {
				return nil, err
			}
			if f.DefaultDocker != nil {
				if prev := seen["\x00default"]; prev != "" {
					return nil, fmt.Errorf("registries.d: default-docker is set in both %s and %s: %w", prev, file, errdefs.ErrInvalid)
				}
				seen["\x00default"] = file
				dirDefault = f.DefaultDocker
			}
			for ns, src := range f.Docker {
				ns = strings.TrimPrefix(ns, "docker://")
				if prev := seen[ns]; prev != "" {
					return nil, fmt.Errorf("registries.d: %s is configured in both %s and %s: %w", ns, prev, file, errdefs.ErrInvalid)
				}
				seen[ns] = file
				cfg.docker[ns] = src
			}
		}
		if dirDefault != nil {
			cfg.defaultDocker = dirDefault
		}
	}
	return cfg, nil
}

func readRegistriesFile(file string) (*registriesFile, error) {
	st, err := os.Stat(file)
	if errors.Is(err, fs.ErrNotExist) {
		return &registriesFile{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("registries.d: %w", err)
	}
	if st.Size() > maxRegistriesFile {
		return nil, fmt.Errorf("registries.d: %s is larger than %d bytes: %w", file, maxRegistriesFile, errdefs.ErrInvalid)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("registries.d: %w", err)
	}
	var f registriesFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("registries.d: %s: %v: %w", file, strings.ReplaceAll(err.Error(), "\n", "; "), errdefs.ErrInvalid)
	}
	return &f, nil
}

// sourceFor is the configuration of the most specific namespace holding
// repo (REGISTRY/PATH): the repository itself, then each parent, then the
// registry, then default-docker.
func (c *registriesConfig) sourceFor(repo string) signatureSource {
	for p := repo; p != "." && p != "/" && p != ""; p = path.Dir(p) {
		if s, ok := c.docker[p]; ok {
			return s
		}
	}
	if c.defaultDocker != nil {
		return *c.defaultDocker
	}
	return signatureSource{}
}
