package builtin

import (
	"embed"
	"io/fs"
)

// assets holds files that the build puts beside this package before
// compiling orbit (see the Makefile): the small standalone pod supervisor,
// assets/orbit-supervisor, and the fly flavour's small stage1 binary,
// assets/orbit-fly. A build without them falls back to running the orbit
// binary itself as the supervisor and as the fly entrypoints.
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

// FlyBinary returns the embedded standalone fly stage1 binary (the fly
// entrypoints and the stage2 launcher), or nil when this build has none.
func FlyBinary() []byte {
	data, err := fs.ReadFile(assets, "assets/orbit-fly")
	if err != nil || len(data) == 0 {
		return nil
	}
	return data
}

// small is the flavour's small standalone binary, if this build has one.
func small(f Flavour) []byte {
	switch f {
	case Nspawn:
		return Supervisor()
	case Fly:
		return FlyBinary()
	}
	return nil
}
