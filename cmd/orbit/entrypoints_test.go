package main

import (
	"strings"
	"testing"

	"github.com/orbit-containers/orbit/stage1/builtin"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// Every available built-in flavour implements every entrypoint of the
// contract, under the name its image's links give it.
func TestEntrypointsCoverTheContract(t *testing.T) {
	eps := entrypoints()
	for _, f := range builtin.Flavours() {
		for _, e := range contract.Entrypoints() {
			name := strings.TrimPrefix(f.EntrypointPath(e), "/")
			if _, ok := eps[name]; ok != f.Available() {
				t.Errorf("%s: implemented %v, flavour available %v", name, ok, f.Available())
			}
		}
	}
}

// A binary started under an entrypoint's name acts as it; under any other
// name it is the CLI.
func TestRunEntrypointDispatch(t *testing.T) {
	if _, ok := runEntrypoint([]string{"/usr/bin/orbit"}); ok {
		t.Error("orbit taken for an entrypoint")
	}
	if _, ok := runEntrypoint(nil); ok {
		t.Error("no arguments taken for an entrypoint")
	}
	// fly stop with bad arguments fails before it does anything.
	code, ok := runEntrypoint([]string{"/pod/stage1/rootfs/fly/stop", "--no-such-flag"})
	if !ok || code != contract.ExitFailure {
		t.Errorf("fly/stop: ok %v, code %d; want true, %d", ok, code, contract.ExitFailure)
	}
}
