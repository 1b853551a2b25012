package builtin

import (
	"embed"
	"io/fs"
)

// assets holds files that the build puts beside this package before
// compiling orbit (see the Makefile): the small standalone pod supervisor,
// assets/orbit-supervisor, and the built-in flavours' small stage1
// binary, assets/orbit-stage1. A build without them falls back to running
// the orbit binary itself as the supervisor and as the entrypoints.
//
//go:embed assets
var assets embed.FS

// Supervisor returns the embedded standalone supervisor binary, or nil when
// this build has none.
func Supervisor() []byte {
	data, err := fs.ReadFile(assets, "assets/orbit-supervisor")
	if err != nil || len(data) == 0 {
		return nil
	}
	return data
}

// Stage1Binary returns the embedded standalone stage1 binary (the built-in
// flavours' entrypoints, nspawn's exec helper and the stage2 launcher), or
// nil when this build has none.
func Stage1Binary() []byte {
	data, err := fs.ReadFile(assets, "assets/orbit-stage1")
	if err != nil || len(data) == 0 {
		return nil
	}
	return data
}
