package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage0"
)

// The library says what is wrong in its own terms; the CLI names its flags.
func TestDNSFlagError(t *testing.T) {
	for _, c := range []struct {
		cfg  stage0.DNSConfig
		want string
	}{
		{stage0.DNSConfig{Servers: []string{"host"}, Search: []string{"example.org"}}, "--dns-search, --dns-opt and --dns-domain cannot be used with --dns=host: invalid"},
		{stage0.DNSConfig{Servers: []string{"none", "192.0.2.1"}}, "--dns=none must be the only --dns value: invalid"},
		{stage0.DNSConfig{Hosts: []string{"host", "192.0.2.1=db"}}, "--hosts-entry=host must be the only --hosts-entry value: invalid"},
		{stage0.DNSConfig{Servers: []string{"not-an-ip"}}, `--dns=not-an-ip: not an IP address, "host" or "none": invalid`},
		{stage0.DNSConfig{Hosts: []string{"192.0.2.1=bad_name"}}, `--hosts-entry=192.0.2.1=bad_name: want IP=HOSTNAME or "host": invalid`},
	} {
		lib := c.cfg.Validate()
		if lib == nil || strings.Contains(lib.Error(), "--") {
			t.Errorf("%+v: library error %v; want one that names no flag", c.cfg, lib)
			continue
		}
		err := dnsFlagError(lib)
		if err.Error() != c.want || !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%+v: %v; want %q", c.cfg, err, c.want)
		}
	}
	if err := (stage0.DNSConfig{Servers: []string{"192.0.2.1"}}).Validate(); err != nil {
		t.Fatal(err)
	}
}
