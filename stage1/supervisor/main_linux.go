package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// maxConfigSize bounds the configuration file Main reads.
const maxConfigSize = 16 << 20

// Main is the supervisor's command line: `[--debug] CONFIG`, where CONFIG
// is a JSON Config written by stage1. args do not include the program
// name. It returns the pod's exit code, or contract.ExitFailure when the pod could not run.
func Main(args []string) int {
	// One P: the supervisor waits on its apps, their output and signals,
	// and each P and the threads that run it stay resident for the
	// pod's whole life.
	runtime.GOMAXPROCS(1)
	fs := flag.NewFlagSet("orbit-supervisor", flag.ContinueOnError)
	debug := fs.Bool("debug", false, "log the supervisor's own diagnostics at debug level")
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		return contract.ExitFailure
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: orbit-supervisor [--debug] CONFIG")
		return contract.ExitFailure
	}
	level := slog.LevelWarn
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("component", "supervisor")
	cfg, err := readConfig(fs.Arg(0))
	if err == nil && cfg.HostIPC {
		err = joinHostIPC()
	}
	if err == nil {
		cfg.Log = log
		var code int
		code, err = Run(context.Background(), cfg)
		if err == nil {
			return code
		}
	}
	fmt.Fprintf(os.Stderr, "orbit-supervisor: %v\n", err)
	return contract.ExitFailure
}

// readConfig reads and decodes a configuration file; unknown fields are
// refused so that a stage1 and a supervisor that disagree fail loudly.
func readConfig(name string) (Config, error) {
	var cfg Config
	f, err := os.Open(name)
	if err != nil {
		return cfg, err
	}
	defer f.Close()
	dec := json.NewDecoder(io.LimitReader(f, maxConfigSize))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %w: %w", name, err, errdefs.ErrInvalid)
	}
	if err := dec.Decode(new(json.RawMessage)); !errors.Is(err, io.EOF) {
		return cfg, fmt.Errorf("config %s: trailing data: %w", name, errdefs.ErrInvalid)
	}
	return cfg, nil
}
