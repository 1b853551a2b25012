package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// rktConfigFiles reads rkt's configuration files of one kind: every *.json
// in <system-config>/<kind>.d, then <local-config>/<kind>.d, in name order,
// with rktKind want. Later files override earlier ones field by field, so
// the local configuration wins over the system one, as rkt documents.
func rktConfigFiles(g *globalOptions, kind, want string) (map[string]string, error) {
	out := map[string]string{}
	for _, base := range []string{g.SystemConfig, g.LocalConfig} {
		if base == "" {
			continue
		}
		dir := filepath.Join(base, kind+".d")
		entries, err := os.ReadDir(dir)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var names []string
		for _, e := range entries {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".json") {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, n := range names {
			p := filepath.Join(dir, n)
			data, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				return nil, fmt.Errorf("%s: %v: %w", p, err, errdefs.ErrInvalid)
			}
			if m["rktKind"] != want {
				continue
			}
			if v, _ := m["rktVersion"].(string); v != "v1" {
				return nil, fmt.Errorf("%s: rktVersion %q: want v1: %w", p, m["rktVersion"], errdefs.ErrInvalid)
			}
			for k, v := range m {
				if s, ok := v.(string); ok && k != "rktKind" && k != "rktVersion" && s != "" {
					out[k] = s
				}
			}
		}
	}
	return out, nil
}

// stage1ImagesDir is the directory --stage1-from-dir names files in:
// paths.d's stage1-images when set, else <system-config>/stage1-images.
func (g *globalOptions) stage1ImagesDir() (string, error) {
	paths, err := rktConfigFiles(g, "paths", "paths")
	if err != nil {
		return "", err
	}
	if d := paths["stage1-images"]; d != "" {
		return d, nil
	}
	return filepath.Join(g.SystemConfig, "stage1-images"), nil
}
