package main

import (
	"path/filepath"

	"github.com/orbit-containers/orbit/stage1/fly"
	"github.com/orbit-containers/orbit/stage1/nspawn"
	"github.com/orbit-containers/orbit/stage1/supervisor"
	"github.com/orbit-containers/orbit/stage2"
)

// runEntrypoint runs the binary as a stage1 entrypoint or as the stage2
// launcher when it was started under one of their names (see
// Documentation/design.md, "Built-in flavours"). It reports false when the
// binary should act as the CLI.
func runEntrypoint(args []string) (int, bool) {
	if len(args) == 0 {
		return 0, false
	}
	name := filepath.Base(filepath.Dir(args[0])) + "/" + filepath.Base(args[0])
	entry, ok := entrypoints()[name]
	if !ok {
		return 0, false
	}
	return entry(args[1:]), true
}

// entrypoints maps "<flavour>/<entrypoint>" to its implementation.
func entrypoints() map[string]func(args []string) int {
	return map[string]func([]string) int{
		"fly/run":           fly.Run,
		"fly/enter":         fly.Enter,
		"fly/gc":            fly.GC,
		"fly/stop":          fly.Stop,
		"nspawn/run":        nspawn.Run,
		"nspawn/enter":      nspawn.Enter,
		"nspawn/gc":         nspawn.GC,
		"nspawn/stop":       nspawn.Stop,
		"nspawn/supervisor": supervisor.Main,
		"nspawn/exec":       nspawn.Exec,
		"stage2/launch":     stage2.Main,
	}
}
