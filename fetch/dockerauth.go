package fetch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// DockerAuth maps a registry host (with its port if it has one) to the
// credentials auth.d gives it in rkt's "dockerAuth" files:
//
//	{"rktKind": "dockerAuth", "rktVersion": "v1",
//	 "registries": ["quay.io"], "credentials": {"user": "...", "password": "..."}}
//
// It is a go-containerregistry keychain; Docker's config.json is asked
// after it.
type DockerAuth map[string]authn.Basic

// LoadDockerAuth reads the dockerAuth files of <dir>/auth.d for each
// directory, later directories overriding earlier ones registry by
// registry, as LoadAuth does for "auth" files.
func LoadDockerAuth(dirs ...string) (DockerAuth, error) {
	merged := DockerAuth{}
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		d := filepath.Join(dir, "auth.d")
		entries, err := os.ReadDir(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", d, err)
		}
		layer := DockerAuth{}
		for _, ent := range entries {
			p := filepath.Join(d, ent.Name())
			info, err := os.Stat(p)
			if !strings.HasSuffix(ent.Name(), ".json") || err != nil || !info.Mode().IsRegular() {
				continue
			}
			if info.Size() > maxConfigSize {
				return nil, fmt.Errorf("%s: larger than %d bytes: %w", p, maxConfigSize, errdefs.ErrInvalid)
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			var f struct {
				Kind        string   `json:"rktKind"`
				Version     string   `json:"rktVersion"`
				Registries  []string `json:"registries"`
				Credentials struct {
					User     string `json:"user"`
					Password string `json:"password"`
				} `json:"credentials"`
			}
			if err := json.Unmarshal(data, &f); err != nil {
				return nil, fmt.Errorf("%s: %w: %w", p, err, errdefs.ErrInvalid)
			}
			if f.Kind != "dockerAuth" {
				continue
			}
			if f.Version != "v1" || len(f.Registries) == 0 || f.Credentials.User == "" {
				return nil, fmt.Errorf("%s: a dockerAuth v1 file needs registries and credentials.user: %w", p, errdefs.ErrInvalid)
			}
			for _, r := range f.Registries {
				if _, dup := layer[r]; dup {
					return nil, fmt.Errorf("%s: registry %s is named twice in %s: %w", p, r, d, errdefs.ErrInvalid)
				}
				layer[r] = authn.Basic{Username: f.Credentials.User, Password: f.Credentials.Password}
			}
		}
		for r, c := range layer {
			merged[r] = c
		}
	}
	return merged, nil
}

// Resolve implements authn.Keychain.
func (a DockerAuth) Resolve(r authn.Resource) (authn.Authenticator, error) {
	host := r.RegistryStr()
	if c, ok := a[host]; ok {
		return &c, nil
	}
	// Docker Hub is named either way.
	if host == "index.docker.io" || host == "registry-1.docker.io" {
		for _, alias := range []string{"docker.io", "index.docker.io", "registry-1.docker.io"} {
			if c, ok := a[alias]; ok {
				return &c, nil
			}
		}
	}
	return authn.Anonymous, nil
}
