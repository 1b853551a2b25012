package main

import (
	"errors"
	"testing"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func TestCLIAppRefusesBadLines(t *testing.T) {
	c := newCLIInstall(t)
	for _, tc := range []struct {
		args  []string
		class error
		frag  string
	}{
		{[]string{"app", "start", "some-uuid"}, errdefs.ErrInvalid, "--app is required"},
		{[]string{"app", "stop", "some-uuid"}, errdefs.ErrInvalid, "--app is required"},
		{[]string{"app", "rm", "some-uuid"}, errdefs.ErrInvalid, "--app is required"},
		{[]string{"app", "status", "some-uuid"}, errdefs.ErrInvalid, "--app is required"},
		{[]string{"app", "add", "some-uuid", "img", "--log=/a", "--stdout=/b"}, errdefs.ErrInvalid, "--log cannot be used with --stdout"},
		{[]string{"app", "add", "some-uuid", "img", "--memory=lots"}, errdefs.ErrInvalid, "memory"},
		{[]string{"app", "add", "some-uuid", "img"}, errdefs.ErrNotFound, "some-uuid"},
		{[]string{"app", "sandbox", "--interactive"}, errdefs.ErrInvalid, "--interactive"},
		{[]string{"app", "sandbox", "--stage1-name=fly"}, errdefs.ErrInvalid, "nspawn flavour"},
		{[]string{"app", "sandbox", "--volume=bad kind"}, errdefs.ErrInvalid, "--volume"},
		{[]string{"app", "list", "--format=yaml", "some-uuid"}, errdefs.ErrInvalid, "--format"},
		{[]string{"app", "frobnicate"}, errdefs.ErrInvalid, "unknown command"},
	} {
		r := c.run(tc.args...)
		if !errors.Is(r.Err, tc.class) {
			t.Errorf("%q: error %v, want %v", tc.args, r.Err, tc.class)
			continue
		}
		cliAssertOneLine(t, tc.args, r, tc.frag)
	}
	if pods := c.pods(); len(pods) != 0 {
		t.Errorf("refused lines made pods: %v", pods)
	}
}
