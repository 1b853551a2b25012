package main

import (
	"context"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// interrupts turns SIGINT and SIGTERM into the cancellation of the context
// commands run in (signal.NotifyContext), so that a wait, a fetch or a lock
// wait ends at once and the command cleans up (temp files, locks, a half
// prepared pod) instead of dying half way. A second signal, once the first
// has cancelled the context, kills orbit as if nothing caught it.
//
// A command that execs stage1 (run, run-prepared, enter) hands the signals
// back first: from then on they kill orbit, or, after the exec, reach
// stage1, which stops the pod in order, as they always did.
type interrupts struct {
	stop context.CancelFunc // NotifyContext's
	// seen gets a copy of the first signal: signal.Stop guarantees that a
	// signal either reaches it or has its default action, so no signal is
	// lost between "no signal yet" and handing the signals back.
	seen chan os.Signal
	once sync.Once
	got  os.Signal
}

// interruptSignals are SIGINT and SIGTERM unless orbit was started with
// them ignored (nohup, a background job): those stay ignored.
func interruptSignals() []os.Signal {
	var sigs []os.Signal
	for _, s := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		if !signal.Ignored(s) {
			sigs = append(sigs, s)
		}
	}
	return sigs
}

// watchInterrupts returns the root command's context.
func watchInterrupts(parent context.Context) (context.Context, *interrupts) {
	in := &interrupts{seen: make(chan os.Signal, 1)}
	sigs := interruptSignals()
	if len(sigs) == 0 { // Notify without signals would take every signal
		ctx, cancel := context.WithCancel(parent)
		in.stop = cancel
		return ctx, in
	}
	signal.Notify(in.seen, sigs...)
	ctx, stop := signal.NotifyContext(parent, sigs...)
	in.stop = stop
	context.AfterFunc(ctx, in.release)
	return ctx, in
}

// release gives the signals back their default action and reports the
// signal that came before, if any. It is safe to call more than once.
func (in *interrupts) release() {
	in.once.Do(func() {
		in.stop()
		signal.Stop(in.seen) // after NotifyContext's: no moment without a handler
		select {
		case in.got = <-in.seen:
		default:
		}
	})
}

// handOver gives the signals back their default action before the command
// execs stage1; it fails if one came before, so that a pod is not started
// after the user asked orbit to stop.
func (in *interrupts) handOver() error {
	in.release()
	if in.got != nil {
		return context.Canceled
	}
	return nil
}

// received is the signal that interrupted orbit, or nil.
func (in *interrupts) received() os.Signal {
	in.release()
	return in.got
}

// dieBy ends orbit by sig with its default action, as if nothing had
// caught it, so that whoever started orbit sees what killed it. The
// signal is handled on another thread, so it waits for it a moment; it
// returns only if the signal did not end the process.
func dieBy(sig os.Signal) {
	if s, ok := sig.(syscall.Signal); ok && unix.Kill(os.Getpid(), s) == nil {
		time.Sleep(time.Second)
	}
}
