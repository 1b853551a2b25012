package builtin

import (
	"bytes"
	"os"
	"testing"

	"github.com/orbit-containers/orbit/stage1/contract"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]Flavour{
		"fly": Fly, "nspawn": Nspawn, "kvm": KVM,
		"orbit.dev/stage1-fly": Fly, "orbit.dev/stage1-nspawn:1.0": Nspawn,
		"coreos.com/rkt/stage1-fly:1.30.0": Fly, "coreos.com/rkt/stage1-coreos": Nspawn,
	} {
		if got, ok := Parse(in); !ok || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "fly:1", "orbit.dev/stage1-foo", "example.com/stage1-fly"} {
		if _, ok := Parse(in); ok {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
}

func TestWriteACIIsDeterministic(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	id, err := BuildID(exe)
	if err != nil || id == "" {
		t.Fatalf("BuildID: %q %v", id, err)
	}
	var a, b bytes.Buffer
	if err := WriteACI(&a, Fly, "1.0", id, Fly.Entries(exe, nil, nil)); err != nil {
		t.Fatal(err)
	}
	if err := WriteACI(&b, Fly, "1.0", id, Fly.Entries(exe, nil, nil)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two writes of the same stage1 image differ")
	}
}

func TestEntriesUseTheSmallBinaries(t *testing.T) {
	sup, stage1 := []byte("supervisor"), []byte("stage1")
	byPath := func(es []Entry) map[string]Entry {
		m := map[string]Entry{}
		for _, e := range es {
			m[e.Path] = e
		}
		return m
	}
	for _, f := range []Flavour{Fly, Nspawn} {
		m := byPath(f.Entries("/usr/bin/orbit", sup, stage1))
		if _, ok := m["/orbit"]; ok {
			t.Fatalf("%s: the image carries the orbit binary beside the small one", f)
		}
		if string(m["/orbit-stage1"].Content) != "stage1" {
			t.Fatalf("%s: /orbit-stage1 = %+v", f, m["/orbit-stage1"])
		}
		if l := m[f.EntrypointPath(contract.Run)].Link; l != "../orbit-stage1" {
			t.Fatalf("%s: run links to %q", f, l)
		}
		if l := m["/stage2/launch"].Link; l != "../orbit-stage1" {
			t.Fatalf("%s: the launcher links to %q", f, l)
		}
	}
	if got := byPath(Nspawn.Entries("/usr/bin/orbit", sup, stage1))["/nspawn/supervisor"]; string(got.Content) != "supervisor" {
		t.Fatalf("nspawn supervisor = %+v", got)
	}
	// Without the standalone supervisor, orbit is PID 1 and everything else.
	m := byPath(Nspawn.Entries("/usr/bin/orbit", nil, stage1))
	if m["/orbit"].Source != "/usr/bin/orbit" || m["/nspawn/supervisor"].Link != "../orbit" || m["/nspawn/run"].Link != "../orbit" {
		t.Fatalf("nspawn without a supervisor: %+v", m)
	}
	// Without the small binaries, orbit is everything.
	m = byPath(Fly.Entries("/usr/bin/orbit", nil, nil))
	if m["/orbit"].Source != "/usr/bin/orbit" || m["/fly/run"].Link != "../orbit" {
		t.Fatalf("fly without a stage1 binary: %+v", m)
	}
}
