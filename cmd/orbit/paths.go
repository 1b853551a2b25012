package main

import (
	"fmt"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage0"
)

// resolvePaths makes --dir and the configuration directories absolute and
// free of symlinks, once, before any command uses them: the mount table
// names pod mounts by their real paths, and stage1 runs from inside the pod
// directory, where a relative path means something else.
func (g *globalOptions) resolvePaths() error {
	if g.Dir == "" {
		return fmt.Errorf("--dir is empty; give orbit's data directory (default /var/lib/orbit): %w", errdefs.ErrInvalid)
	}
	for _, p := range []struct {
		flag string
		v    *string
	}{{"dir", &g.Dir}, {"local-config", &g.LocalConfig}, {"system-config", &g.SystemConfig}, {"user-config", &g.UserConfig}} {
		if *p.v == "" {
			continue
		}
		real, err := stage0.RealPath(*p.v)
		if err != nil {
			return fmt.Errorf("--%s=%s: %w", p.flag, *p.v, err)
		}
		*p.v = real
	}
	return nil
}
