package insecure

import (
	"errors"
	"testing"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func TestParse(t *testing.T) {
	cases := map[string]Options{
		"":                  0,
		"none":              0,
		"image":             Image,
		"image,http":        Image | HTTP,
		" Image , TLS ":     Image | TLS,
		"all-fetch":         Image | TLS | HTTP | Pubkey,
		"all-run":           Capabilities | Paths | Seccomp,
		"all":               All,
		"seccomp,all-fetch": AllFetch | Seccomp,
	}
	for in, want := range cases {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := Parse("image,bogus"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("unknown option: %v", err)
	}
}

func TestSetAccumulatesAndString(t *testing.T) {
	var o Options
	if err := o.Set("image"); err != nil {
		t.Fatal(err)
	}
	if err := o.Set("paths"); err != nil {
		t.Fatal(err)
	}
	if !o.Has(Image|Paths) || o.Has(HTTP) {
		t.Fatalf("set = %v", o)
	}
	if o.String() != "image,paths" {
		t.Fatalf("String() = %q", o.String())
	}
	if Options(0).String() != "none" {
		t.Fatal("empty set should print none")
	}
}
