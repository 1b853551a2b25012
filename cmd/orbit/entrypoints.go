package main

import (
	"path/filepath"
	"strings"

	"github.com/orbit-containers/orbit/stage1/builtin"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/fly"
	"github.com/orbit-containers/orbit/stage1/kvm"
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

// entrypoints maps "<flavour>/<entrypoint>" (a built-in image's
// builtin.Flavour.EntrypointPath without its leading slash) and the names
// of the helpers in the images to their implementations.
func entrypoints() map[string]func(args []string) int {
	flavours := map[builtin.Flavour]map[contract.Entrypoint]func([]string) int{
		builtin.Fly: {
			contract.Run:   fly.Run,
			contract.Enter: fly.Enter,
			contract.GC:    fly.GC,
			contract.Stop:  fly.Stop,
		},
		builtin.Nspawn: {
			contract.Run:      nspawn.Run,
			contract.Enter:    nspawn.Enter,
			contract.GC:       nspawn.GC,
			contract.Stop:     nspawn.Stop,
			contract.AppAdd:   nspawn.AppAdd,
			contract.AppStart: nspawn.AppStart,
			contract.AppStop:  nspawn.AppStop,
			contract.AppRm:    nspawn.AppRm,
		},
		builtin.KVM: {
			contract.Run:   kvm.Run,
			contract.Enter: kvm.Enter,
			contract.GC:    kvm.GC,
			contract.Stop:  kvm.Stop,
		},
	}
	m := map[string]func([]string) int{
		"nspawn/supervisor": supervisor.Main,
		"nspawn/exec":       nspawn.Exec,
		"stage2/launch":     stage2.Main,
	}
	for f, eps := range flavours {
		for e, fn := range eps {
			m[strings.TrimPrefix(f.EntrypointPath(e), "/")] = fn
		}
	}
	return m
}
