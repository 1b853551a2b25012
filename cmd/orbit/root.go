package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/insecure"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// globalOptions are the flags every command accepts, as rkt names them.
type globalOptions struct {
	Dir          string
	LocalConfig  string
	SystemConfig string
	UserConfig   string
	Insecure     insecure.Options
	Debug        bool

	Stdout io.Writer
	Stderr io.Writer
	Log    *slog.Logger

	// interrupts is how SIGINT and SIGTERM reach commands (see
	// watchInterrupts); nil in tests that build commands directly.
	interrupts *interrupts

	// noCompletions leaves the shell-completion functions unregistered:
	// execute sets it unless the shell asks for completions, so that a
	// command does not spend its start-up walking the command tree for
	// them.
	noCompletions bool
}

// handOverSignals gives SIGINT and SIGTERM back to their default action
// before a command execs stage1, which then handles them. It fails if one
// came already: the user asked orbit to stop, so no pod is started.
func (g *globalOptions) handOverSignals() error {
	if g.interrupts == nil {
		return nil
	}
	return g.interrupts.handOver()
}

func (g *globalOptions) addFlags(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&g.Dir, "dir", "/var/lib/orbit", "orbit data directory")
	f.StringVar(&g.LocalConfig, "local-config", "/etc/orbit", "local configuration directory")
	f.StringVar(&g.SystemConfig, "system-config", "/usr/lib/orbit", "system configuration directory")
	f.StringVar(&g.UserConfig, "user-config", "", "user configuration directory")
	f.Var(&g.Insecure, "insecure-options", "comma-separated list of security checks to disable: "+joinWords(insecure.Valid()))
	f.BoolVar(&g.Debug, "debug", false, "print debugging information on stderr")
}

func joinWords(w []string) string {
	s := ""
	for i, x := range w {
		if i > 0 {
			s += ", "
		}
		s += x
	}
	return s
}

// storeDir and podsDir are where the image store and the pods live.
func (g *globalOptions) storeDir() string { return filepath.Join(g.Dir, "cas") }
func (g *globalOptions) podsDir() string  { return filepath.Join(g.Dir, "pods") }

// exitError carries an exit status out of a command without printing
// anything more: the command has said what it had to say.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func newRootCommand(g *globalOptions) *cobra.Command {
	root := &cobra.Command{
		Use:           "orbit",
		Short:         "orbit runs App Container images in pods, without a daemon",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			g.Log = newCLILogger(g.Stderr, g.Debug)
			if err := checkRoot(cmd); err != nil {
				return err
			}
			return g.resolvePaths()
		},
	}
	g.addFlags(root)
	root.SetErr(g.Stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return fmt.Errorf("%w%s (see '%s --help')", err, globalFlagHint(c, err), c.CommandPath())
	})
	for _, add := range commandConstructors() {
		root.AddCommand(add(g))
	}
	root.InitDefaultCompletionCmd()
	addManPagesCommand(root)
	refuseUnknownSubcommands(root)
	applyHelp(root)
	if !g.noCompletions {
		registerCompletions(g, root)
	}
	return root
}

// refuseUnknownSubcommands makes every command that groups subcommands
// refuse an unknown one in one line, with cobra's suggestion folded in
// (cobra's own message is a block of lines).
func refuseUnknownSubcommands(c *cobra.Command) {
	if c.HasSubCommands() && c.Args == nil && c.Run == nil && c.RunE == nil {
		c.Args = cobra.ArbitraryArgs
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			if cmd.SuggestionsMinimumDistance <= 0 {
				cmd.SuggestionsMinimumDistance = 2
			}
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += fmt.Sprintf("; did you mean %q?", s[0])
			}
			return usageErr(cmd, msg)
		}
	}
	for _, sub := range c.Commands() {
		refuseUnknownSubcommands(sub)
	}
}

// commandConstructors lists every subcommand; each lives in its own file.
func commandConstructors() []func(*globalOptions) *cobra.Command {
	return []func(*globalOptions) *cobra.Command{
		newVersionCommand,
		newImageCommand,
		newFetchCommand,
		newTrustCommand,
		newConfigCommand,
		newRunCommand,
		newPrepareCommand,
		newRunPreparedCommand,
		newListCommand,
		newStatusCommand,
		newGCCommand,
		newRmCommand,
		newCatManifestCommand,
		newExportCommand,
		newEnterCommand,
		newStopCommand,
		newMetadataServiceCommand,
		newAppCommand,
		newLogsCommand,
	}
}

func execute(args []string) int {
	ctx, in := watchInterrupts(context.Background())
	g := &globalOptions{Stdout: os.Stdout, Stderr: os.Stderr, interrupts: in}
	g.Log = newCLILogger(os.Stderr, false)
	g.noCompletions = !slices.ContainsFunc(args, func(a string) bool {
		return a == cobra.ShellCompRequestCmd || a == cobra.ShellCompNoDescRequestCmd
	})
	root := newRootCommand(g)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil && cmd != nil {
		err = permissionHint(err, cmd.CommandPath())
	}
	if sig := in.received(); sig != nil {
		// Interrupted: orbit ends as the signal would have ended it had
		// nothing caught it, once the command has cleaned up.
		if err != nil && g.Debug {
			fmt.Fprintf(os.Stderr, "orbit: %s\n", oneLine(err, true))
		}
		dieBy(sig)
	}
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintf(os.Stderr, "orbit: %s\n", oneLine(err, g.Debug))
	return contract.ExitFailure
}

// oneLine renders an error for the user: the whole chain is already in the
// message; with --debug the error's type chain is shown too.
func oneLine(err error, debug bool) string {
	if !debug {
		// Errors are one line; a library's multi-line message is folded.
		return foldLines(err.Error())
	}
	s := err.Error()
	for e := err; e != nil; e = errors.Unwrap(e) {
		s += fmt.Sprintf("\n  %T: %v", e, e)
	}
	return s
}

// printf writes a command's result to stdout; errorf a diagnostic to stderr.
func (g *globalOptions) printf(format string, a ...any) { fmt.Fprintf(g.Stdout, format, a...) }
func (g *globalOptions) errorf(format string, a ...any) {
	fmt.Fprintf(g.Stderr, "orbit: "+format+"\n", a...)
}

// usageErr is a command-line mistake, reported with where to find help.
func usageErr(cmd *cobra.Command, msg string) error {
	return usageError(fmt.Sprintf("%s (see '%s --help')", msg, cmd.CommandPath()))
}

// usageError is an invalid command line; its message ends with where to
// find help rather than with the error class.
type usageError string

func (e usageError) Error() string { return string(e) }
func (e usageError) Unwrap() error { return errdefs.ErrInvalid }

// readUUIDFile reads a pod UUID saved by --uuid-file-save.
func readUUIDFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("--uuid-file: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}

// foldLines joins the non-empty lines of a message with "; ".
func foldLines(s string) string {
	if !strings.Contains(s, "\n") {
		return s
	}
	var parts []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}
