package builtin

import (
	"embed"
	"io/fs"
)

// assets holds files that the build puts beside this package before
// compiling orbit (see the Makefile): the small standalone pod supervisor,
// assets/orbit-supervisor. A build without it falls back to running the
// orbit binary itself as the supervisor.
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
