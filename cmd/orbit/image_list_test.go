package main

import (
	"testing"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/store"
)

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{
		0:               "0B",
		1023:            "1023B",
		1024:            "1.0KiB",
		1536:            "1.5KiB",
		12 << 20:        "12MiB",
		1996800:         "1.9MiB",
		3 << 40:         "3.0TiB",
		5000 << 40:      "5000TiB",
		143*(1<<20) + 1: "143MiB",
	} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestImageFieldsFlag(t *testing.T) {
	var f imageFields
	if err := f.Set("ID,name,lastused"); err != nil {
		t.Fatal(err)
	}
	if f.String() != "id,name,lastused" {
		t.Fatalf("fields = %s", f.String())
	}
	for _, bad := range []string{"id,id", "bogus", ""} {
		if err := f.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

func TestSortImages(t *testing.T) {
	now := time.Now()
	images := []store.Image{
		{ID: "sha512-b", Name: "b", Size: 2, ImportedAt: now},
		{ID: "sha512-a", Name: "a", Size: 2, ImportedAt: now.Add(time.Second)},
		{ID: "sha512-c", Name: "c", Size: 1, ImportedAt: now.Add(-time.Second)},
	}
	sortImages(images, imageFields{fieldSize, fieldName}, false)
	if images[0].Name != "c" || images[1].Name != "a" || images[2].Name != "b" {
		t.Fatalf("by size, name: %v %v %v", images[0].Name, images[1].Name, images[2].Name)
	}
	sortImages(images, imageFields{fieldImportTime}, true)
	if images[0].Name != "a" || images[2].Name != "c" {
		t.Fatalf("by import time, desc: %v %v %v", images[0].Name, images[1].Name, images[2].Name)
	}
}

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"example.com/app:1.0":        "example.com/app:1.0",
		"日本:ünï":                     "日本:ünï",
		"1\nsha512-forged\tx":        `1\nsha512-forged\tx`,
		"\x1b[2Jcleared":             `\x1b[2Jcleared`,
		"rtl\u202eexe":               `rtl\u202eexe`,
		`back\slash` + "\n":          `back\\slash\n`,
		"bad\xffbyte":                `bad\xffbyte`,
		`plain "quoted" \ backslash`: `plain "quoted" \\ backslash`,
	} {
		if got := printable(in); got != want {
			t.Errorf("printable(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestImageNameOCI(t *testing.T) {
	// The store works OCIName out of the manifest's annotations
	// (store.TestOCINameColumn); a listing's images carry no manifest.
	img := store.Image{Name: "127.0.0.1_5000/demo/app", Labels: types.Labels{{Name: "version", Value: "v1"}}, OCIName: "127.0.0.1:5000/demo/app:v1"}
	if got := imageName(img); got != "127.0.0.1:5000/demo/app:v1" {
		t.Fatalf("OCI image named %q", got)
	}
	aci := store.Image{Name: "example.com/app", Labels: types.Labels{{Name: "version", Value: "1.0"}}, Manifest: &schema.ImageManifest{Name: "example.com/app"}}
	if got := imageName(aci); got != "example.com/app:1.0" {
		t.Fatalf("ACI named %q", got)
	}
}
