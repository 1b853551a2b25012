package pod

import (
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"reflect"
	"strings"
	"syscall"

	"github.com/orbit-containers/orbit/stage1/contract"
)

// The skeleton every flavour's entrypoints share (see CONTRIBUTING.md,
// "Adding a stage1 flavour"): Main reports the one error line and the exit
// status, Security reads the run flags' isolation switches, Stdin gives the
// main child its input, Relay hands signals on while it runs, RunEntered
// runs an entered command, and WaitStatus (exit.go) turns how a child ended
// into the entrypoint's exit status.

// Main runs an entrypoint's body with its arguments (without the program
// name) and returns the process's exit status: the body's status, or, when
// the body fails, contract.ExitFailure after one line on stderr,
// "<name>: <error>" (name is "stage1 fly", "stage1 nspawn enter", ...).
func Main(name string, args []string, body func(args []string) (int, error)) int {
	code, err := body(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return contract.ExitFailure
	}
	return code
}

// SecurityOf is what the run flags switch off of the apps' isolation.
func SecurityOf(o *contract.RunOptions) Security {
	return Security{
		AllCapabilities:    o.DisableCapabilitiesRestriction,
		NoPathRestrictions: o.DisablePaths,
		NoSeccomp:          o.DisableSeccomp,
	}
}

// Stdin is the standard input of a run entrypoint's main child (the app
// under fly, systemd-nspawn under nspawn): this process's own with
// --interactive, else /dev/null, as in rkt. close releases what Stdin
// opened; call it once the child has started or failed to.
func Stdin(interactive bool) (in *os.File, close func()) {
	if interactive {
		return os.Stdin, func() {}
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return os.Stdin, func() {}
	}
	return devnull, func() { devnull.Close() }
}

// Relay calls handle, from one goroutine, for every signal that arrives on
// any of chans, until stop is called. stop returns once that goroutine has
// returned, so that the channels are the caller's alone again.
func Relay(handle func(os.Signal), chans ...<-chan os.Signal) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(done)}}
	for _, c := range chans {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c)})
	}
	go func() {
		defer close(finished)
		for {
			i, v, _ := reflect.Select(cases)
			if i == 0 {
				return
			}
			handle(v.Interface().(os.Signal))
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// RunEntered runs a command an enter entrypoint was asked for, on this
// process's standard input, output and error, and returns its exit
// status. The terminal's signals (^C, ^\) go to the command alone. start
// starts cmd (cmd.Start, or a start in the app's cgroup); the command's
// ExtraFiles are closed once it has started.
func RunEntered(cmd *exec.Cmd, start func() error) (int, error) {
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	signal.Ignore(syscall.SIGINT, syscall.SIGQUIT)
	if err := start(); err != nil {
		return 0, err
	}
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
	return WaitStatus(cmd)
}

// EnteredEnv is the environment of a command run by `enter`: the app's,
// with the caller's TERM when the caller has one (rkt's enter kept
// TERM=dumb dumb), since the command talks to the caller's terminal.
func EnteredEnv(env []string) []string {
	term, ok := os.LookupEnv("TERM")
	if !ok {
		return env
	}
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, "TERM=") {
			out = append(out, kv)
		}
	}
	return append(out, "TERM="+term)
}
