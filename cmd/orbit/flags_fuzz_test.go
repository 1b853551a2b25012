package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage0"
	"github.com/orbit-containers/orbit/stage1/builtin"
)

// FuzzFlagValues feeds one string to every flag value parser the CLI
// checks before a pod is made. None may panic; a refusal is one line
// wrapping errdefs.ErrInvalid; what is accepted is within range.
func FuzzFlagValues(f *testing.F) {
	for _, seed := range []string{
		"512M", "4Mi", "1", "0", "-1", "", "99999999999999999999G", "1e3", "0.5", "500m", "1000001", "1m",
		"orbit-1234", "bad_host", "-bad", "a.b.c", strings.Repeat("a", 70), "host", "default", "bad name!", "net:IP=10.0.0.1",
		"volume=data,target=/data", "volume=,target=/x", "target=/x", "volume=data,target=/x,extra=1",
		"http:80", "http:127.0.0.1:8080", "http:0", ":80", "http:::1:80",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if q, err := stage0.ParseMemoryLimit(s); err != nil {
			fuzzRefusal(t, "memory", err)
		} else if n := q.Value(); n < 4<<20 || n > 1<<60 {
			t.Fatalf("memory %q accepted as %d bytes", s, n)
		}
		if q, err := stage0.ParseCPULimit(s); err != nil {
			fuzzRefusal(t, "cpu", err)
		} else if n := q.MilliValue(); n < 1 || n > 1_000_000_000 {
			t.Fatalf("cpu %q accepted as %d milli", s, n)
		}
		if err := stage0.CheckHostname(s); err != nil {
			fuzzRefusal(t, "hostname", err)
		} else if s == "" || len(s) > 64 || strings.ContainsAny(s, "_ /\x00") || strings.HasPrefix(s, "-") {
			t.Fatalf("hostname %q accepted", s)
		}
		for _, fl := range []builtin.Flavour{0, builtin.Nspawn, builtin.Fly} {
			if err := stage0.CheckNet(strings.Split(s, ","), fl); err != nil {
				fuzzRefusal(t, "net", err)
			} else if fl == builtin.Fly && s != "host" {
				t.Fatalf("--net=%q accepted for %v", s, fl)
			}
		}
		if m, err := parseMountFlag(s); err != nil {
			fuzzRefusal(t, "mount", err)
		} else if m.Volume == "" || m.Path == "" {
			t.Fatalf("mount %q accepted as %+v", s, m)
		}
		if p, err := parsePortFlag(s); err != nil {
			fuzzRefusal(t, "port", err)
		} else if p.HostPort == 0 || p.HostPort > 65535 {
			t.Fatalf("port %q accepted as %+v", s, p)
		}
		a := appFlags{memory: s, cpu: s, set: map[string]bool{"memory": true, "cpu": true}}
		if err := a.validate(); err != nil {
			fuzzRefusal(t, "app flags", err)
		}
	})
}

func fuzzRefusal(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("%s: refusal %q does not wrap ErrInvalid", what, err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("%s: refusal is not one line: %q", what, err)
	}
}
