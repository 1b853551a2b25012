package builtin

import (
	"bytes"
	"os"
	"testing"
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
	if err := WriteACI(&a, Fly, "1.0", id, Fly.Entries(exe, nil)); err != nil {
		t.Fatal(err)
	}
	if err := WriteACI(&b, Fly, "1.0", id, Fly.Entries(exe, nil)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("two writes of the same stage1 image differ")
	}
}
