package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// Every command a user can run has examples in its --help (and so in its
// man page), and says what a missing argument is.
func TestEveryCommandHasExamples(t *testing.T) {
	g := &globalOptions{Stdout: new(strings.Builder), Stderr: new(strings.Builder)}
	root := newRootCommand(g)
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		// cobra's own completion and help commands document themselves.
		if c.Hidden || c.Name() == "help" || strings.HasPrefix(commandName(c), "completion") {
			return
		}
		if c != root && strings.TrimSpace(c.Example) == "" {
			t.Errorf("%s has no Examples in its help", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func TestArgsErrorsNameWhatIsNeeded(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status"}, "status needs a pod UUID or --uuid-file (see 'orbit status --help')"},
		{[]string{"run-prepared"}, "run-prepared needs a pod UUID (see 'orbit run-prepared --help')"},
		{[]string{"image", "export", "x"}, "image export takes an image ID or NAME and a FILE.aci; got 1 arguments (x) (see 'orbit image export --help')"},
	} {
		g := &globalOptions{Stdout: new(strings.Builder), Stderr: new(strings.Builder)}
		root := newRootCommand(g)
		root.SetArgs(tc.args)
		err := root.Execute()
		if err == nil || err.Error() != tc.want {
			t.Errorf("orbit %v: %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"hello", "helo", 1}, {"example.com/hello", "example.com/hello", 0}, {"", "abc", 3}, {"kitten", "sitting", 3}} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
