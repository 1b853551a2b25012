// Package insecure holds the set of security checks a user may switch off
// with --insecure-options, as rkt names them.
package insecure

import (
	"fmt"
	"sort"
	"strings"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// Options is a set of disabled security checks.
type Options uint32

// The individual options. Their names (see names) are rkt's.
const (
	Image        Options = 1 << iota // skip signature verification
	TLS                              // accept any TLS certificate
	OnDisk                           // skip on-disk verification of stored images
	HTTP                             // allow plain HTTP
	Pubkey                           // trust keys from HTTPS on first use without asking
	Capabilities                     // give apps all capabilities
	Paths                            // do not hide or make read-only sensitive paths
	Seccomp                          // no seccomp filter
)

// Groups as rkt defines them.
const (
	AllFetch = Image | TLS | HTTP | Pubkey
	AllRun   = Capabilities | Paths | Seccomp
	All      = AllFetch | AllRun | OnDisk
)

func names() map[string]Options {
	return map[string]Options{
		"none":         0,
		"image":        Image,
		"tls":          TLS,
		"ondisk":       OnDisk,
		"http":         HTTP,
		"pubkey":       Pubkey,
		"capabilities": Capabilities,
		"paths":        Paths,
		"seccomp":      Seccomp,
		"all-fetch":    AllFetch,
		"all-run":      AllRun,
		"all":          All,
	}
}

// Parse reads a comma-separated list such as "image,http".
func Parse(s string) (Options, error) {
	var o Options
	known := names()
	for _, word := range strings.Split(s, ",") {
		word = strings.TrimSpace(strings.ToLower(word))
		if word == "" {
			continue
		}
		v, ok := known[word]
		if !ok {
			return 0, fmt.Errorf("unknown insecure option %q (valid: %s): %w", word, strings.Join(Valid(), ", "), errdefs.ErrInvalid)
		}
		o |= v
	}
	return o, nil
}

// Valid lists the accepted words, sorted.
func Valid() []string {
	var out []string
	for k := range names() {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Has reports whether every option in want is set.
func (o Options) Has(want Options) bool { return o&want == want }

// String lists the single options that are set, comma-separated.
func (o Options) String() string {
	single := []struct {
		name string
		v    Options
	}{
		{"image", Image}, {"tls", TLS}, {"ondisk", OnDisk}, {"http", HTTP},
		{"pubkey", Pubkey}, {"capabilities", Capabilities}, {"paths", Paths}, {"seccomp", Seccomp},
	}
	var parts []string
	for _, s := range single {
		if o.Has(s.v) {
			parts = append(parts, s.name)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ",")
}

// Set and Type make Options usable as a pflag.Value: each use of the flag
// adds to the set.
func (o *Options) Set(s string) error {
	v, err := Parse(s)
	if err != nil {
		return err
	}
	*o |= v
	return nil
}

// Type names the flag's value in help output.
func (o *Options) Type() string { return "insecure-options" }
