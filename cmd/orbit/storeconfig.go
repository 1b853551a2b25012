package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/store"
)

// storeConfigFile is the image store's settings in a configuration
// directory: {"maxImageSize": "16GiB"}. The local directory's overrides
// the system one's, and ORBIT_MAX_IMAGE_SIZE overrides both.
const (
	storeConfigFile = "store.json"
	maxImageSizeEnv = "ORBIT_MAX_IMAGE_SIZE"
)

type storeConfig struct {
	MaxImageSize string `json:"maxImageSize,omitempty"`
}

// storeLimits reads the store's limits from the configuration directories
// and the environment.
func (g *globalOptions) storeLimits() (store.Limits, error) {
	var l store.Limits
	for _, dir := range []string{g.SystemConfig, g.LocalConfig} {
		if dir == "" {
			continue
		}
		path := filepath.Join(dir, storeConfigFile)
		data, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return l, fmt.Errorf("%s: %w", path, err)
		}
		var c storeConfig
		if err := json.Unmarshal(data, &c); err != nil {
			return l, fmt.Errorf("%s: %w: %w", path, err, errdefs.ErrInvalid)
		}
		if c.MaxImageSize != "" {
			if l.MaxImageSize, err = store.ParseSize(c.MaxImageSize); err != nil {
				return l, fmt.Errorf("%s: maxImageSize: %w", path, err)
			}
		}
	}
	if v, ok := os.LookupEnv(maxImageSizeEnv); ok {
		n, err := store.ParseSize(v)
		if err != nil {
			return l, fmt.Errorf("%s: %w", maxImageSizeEnv, err)
		}
		l.MaxImageSize = n
	}
	return l, nil
}
