// Command orbit-stage1 is the built-in flavours' stage1 entrypoints on
// their own: a small static binary that the built-in stage1 images carry
// instead of the whole orbit binary, so that starting a pod runs small
// processes (the run entrypoint, nspawn's exec helper, the stage2
// launcher) instead of copies of the CLI with all its packages to
// initialise. It acts as what it is started as: argv[0]
// ".../<flavour>/<entrypoint>" (fly, nspawn with its app entrypoints,
// and kvm), ".../nspawn/exec" or ".../stage2/launch". nspawn's pod
// supervisor is a binary of its own (cmd/orbit-supervisor).
//
//	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' ./cmd/orbit-stage1
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/fly"
	"github.com/orbit-containers/orbit/stage1/kvm"
	"github.com/orbit-containers/orbit/stage1/nspawn"
	"github.com/orbit-containers/orbit/stage2"
)

// entrypoint names an entrypoint as the built-in images lay it out
// (builtin.Flavour.EntrypointPath without its leading slash).
func entrypoint(flavour string, e contract.Entrypoint) string {
	return flavour + "/" + strings.ReplaceAll(string(e), "/", "-")
}

func main() {
	entries := map[string]func([]string) int{
		entrypoint("fly", contract.Run):         fly.Run,
		entrypoint("fly", contract.Enter):       fly.Enter,
		entrypoint("fly", contract.GC):          fly.GC,
		entrypoint("fly", contract.Stop):        fly.Stop,
		entrypoint("nspawn", contract.Run):      nspawn.Run,
		entrypoint("nspawn", contract.Enter):    nspawn.Enter,
		entrypoint("nspawn", contract.GC):       nspawn.GC,
		entrypoint("nspawn", contract.Stop):     nspawn.Stop,
		entrypoint("nspawn", contract.AppAdd):   nspawn.AppAdd,
		entrypoint("nspawn", contract.AppStart): nspawn.AppStart,
		entrypoint("nspawn", contract.AppStop):  nspawn.AppStop,
		entrypoint("nspawn", contract.AppRm):    nspawn.AppRm,
		entrypoint("kvm", contract.Run):         kvm.Run,
		entrypoint("kvm", contract.Enter):       kvm.Enter,
		entrypoint("kvm", contract.GC):          kvm.GC,
		entrypoint("kvm", contract.Stop):        kvm.Stop,
		"nspawn/exec":                           nspawn.Exec,
		stage2.LauncherName:                     stage2.Main,
	}
	name := filepath.Base(filepath.Dir(os.Args[0])) + "/" + filepath.Base(os.Args[0])
	entry, ok := entries[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "orbit-stage1: started as %q, which is none of the built-in stage1 entrypoints or the stage2 launcher\n", os.Args[0])
		os.Exit(contract.ExitFailure)
	}
	os.Exit(entry(os.Args[1:]))
}
