package tests

import (
	"strings"
	"testing"
)

func TestVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.mustRun("version")
	if !strings.Contains(r.Stdout, "orbit Version:") || !strings.Contains(r.Stdout, "appc Version: 0.8.11") {
		t.Fatalf("unexpected version output: %s", r)
	}
}

func TestUnknownFlagFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.run("--no-such-flag")
	if r.Code == 0 || !strings.Contains(r.Stderr, "unknown flag: --no-such-flag") {
		t.Fatalf("want a clear error for an unknown flag, got %s", r)
	}
	if n := strings.Count(strings.TrimSpace(r.Stderr), "\n"); n != 0 {
		t.Fatalf("want one line of error, got %d: %q", n+1, r.Stderr)
	}
}
