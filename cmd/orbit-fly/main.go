// Command orbit-fly is the fly flavour's stage1 on its own: a small static
// binary that the built-in fly stage1 image carries instead of the whole
// orbit binary, so that a fly pod starts two small processes (the
// entrypoint and the stage2 launcher it re-executes) instead of two
// copies of the CLI with all its packages to initialise. It acts as the
// entrypoint or the launcher it is started as (argv[0]
// ".../fly/run", ".../fly/enter", ".../fly/gc", ".../fly/stop" or
// ".../stage2/launch").
//
//	CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' ./cmd/orbit-fly
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/fly"
	"github.com/orbit-containers/orbit/stage2"
)

func main() {
	name := filepath.Base(filepath.Dir(os.Args[0])) + "/" + filepath.Base(os.Args[0])
	entry, ok := map[string]func([]string) int{
		"fly/" + string(contract.Run):   fly.Run,
		"fly/" + string(contract.Enter): fly.Enter,
		"fly/" + string(contract.GC):    fly.GC,
		"fly/" + string(contract.Stop):  fly.Stop,
		stage2.LauncherName:             stage2.Main,
	}[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "orbit-fly: started as %q, which is none of the fly entrypoints or the stage2 launcher\n", os.Args[0])
		os.Exit(contract.ExitFailure)
	}
	os.Exit(entry(os.Args[1:]))
}
