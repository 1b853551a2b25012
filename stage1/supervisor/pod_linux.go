package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/cgroup"
)

// systemd's shutdown requests to an init (SIGRTMIN+3 halt, SIGRTMIN+4
// poweroff, with glibc's SIGRTMIN of 34), as systemd-nspawn --boot and
// machinectl send them; the supervisor stops the pod on either.
const (
	sigHalt     = unix.Signal(37)
	sigPoweroff = unix.Signal(38)
)

// copierTimeout bounds the wait, once every app is done, for the output of
// processes that outlived their app (only possible without cgroups).
const copierTimeout = 2 * time.Second

// Run runs the pod to its end and returns its exit code: a single app's
// own status; for several apps the status of the first app that failed
// (which stopped the others), or 0 when every app exited 0. Statuses are the
// shell's: the exit code, or 128+signal. Run returns an error only when the
// pod could not run at all (an invalid configuration, no cgroups).
//
// Run must be the only code in the process that waits for children, and
// only one Run may be active in a process. When the process is not PID 1 it
// makes itself the child subreaper, so orphans of the apps are its to reap.
// SIGTERM, SIGINT and SIGHUP are forwarded to the apps; SIGTERM and SIGINT,
// or ctx being done, also stop the pod. As PID 1 it asks for SIGTERM when
// its parent (systemd-nspawn) dies. See Documentation/supervisor.md.
func Run(ctx context.Context, cfg Config) (exitCode int, err error) {
	return run(ctx, cfg)
}

// pod is one Run.
type pod struct {
	cfg    Config
	log    *slog.Logger
	reaper *reaper
	out    output
	layout *cgroup.Layout // nil without cgroups
	// journal is journald's socket for a multi-app pod's output, or nil.
	journal *journal

	copiers sync.WaitGroup
	readers []*os.File // read ends of output pipes, closed at the end

	mu       sync.Mutex
	stopping bool // no new app or pre-start handler starts
	killed   bool // the grace period is over: nothing new starts
	running  map[string]*proc

	// starting is done once every app has started or given up starting;
	// started marks one app so (once).
	starting sync.WaitGroup
	started  map[string]func()

	// sockets are the socket-activation sockets the supervisor was handed.
	sockets []*os.File

	// Mutable pods only, under mu: each app's log files (stdout, stderr;
	// either may be nil), and the channels closed once an app being
	// started has its process running (or gave up).
	logs       map[string][2]*os.File
	launchWait map[string]chan struct{}
	// ended marks, under mu, the apps whose process has exited and whose
	// status is recorded, while their run still finishes (post-stop
	// handlers, leftovers killed, the app's cgroup removed).
	ended map[string]bool
}

// appStarted marks the app as past starting (idempotent).
func (p *pod) appStarted(name string) {
	if f := p.started[name]; f != nil {
		f()
	}
}

// proc is the process an app runs at the moment: the app itself or one of
// its event handlers.
type proc struct {
	cmd   *exec.Cmd
	group *cgroup.Group
}

// result is an app's end, sent by runApp to the pod's loop.
type result struct {
	name   string
	ran    bool // false: the pod stopped before the app started
	status Status
}

func run(ctx context.Context, cfg Config) (int, error) {
	// First of all: as PID 1 of its namespace the supervisor does not get
	// the signals it has no handler for, so a stop sent while it is still
	// setting up would be lost; caught now, it is acted on once the apps
	// are started.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, sigHalt, sigPoweroff)
	defer signal.Stop(sigs)
	if err := cfg.validate(); err != nil {
		return 0, err
	}
	if err := cfg.setMetadataURL(); err != nil {
		return 0, err
	}
	if cfg.StopGracePeriod == 0 {
		cfg.StopGracePeriod = DefaultStopGracePeriod
	}
	if cfg.Stdout == nil {
		cfg.Stdout = os.Stdout
	}
	if cfg.Stderr == nil {
		cfg.Stderr = os.Stderr
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &pod{cfg: cfg, log: log, running: map[string]*proc{}, sockets: activation.Files(true), logs: map[string][2]*os.File{}, launchWait: map[string]chan struct{}{}, ended: map[string]bool{}, journal: openJournal(cfg.JournalSocket)}
	if cfg.StatusDir != "" {
		if fi, err := os.Stat(cfg.StatusDir); err != nil || !fi.IsDir() {
			return 0, fmt.Errorf("status directory %s: not a directory (%v): %w", cfg.StatusDir, err, errdefs.ErrInvalid)
		}
	}
	if err := p.setupCgroups(); err != nil {
		return 0, err
	}
	if os.Getpid() != 1 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			log.Warn("cannot become child subreaper; orphans will not be reaped", "err", err)
		}
	}

	if os.Getpid() == 1 {
		// The container's init: should systemd-nspawn, its parent, die
		// without stopping the container (killed with SIGKILL), the
		// kernel sends SIGTERM and the pod stops in order instead of
		// living on unowned. Set once the handler is in place.
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGTERM), 0, 0, 0); err != nil {
			log.Warn("cannot set a parent-death signal", "err", err)
		}
	}
	p.reaper = newReaper(log)
	defer p.reaper.close()
	if cfg.GuestEnter != nil {
		go p.serveGuestEnter(cfg.GuestEnter)
	}
	if cfg.Mutable {
		return p.runMutable(ctx, sigs)
	}

	p.started = map[string]func(){}
	p.starting.Add(len(cfg.Apps))
	for _, spec := range cfg.Apps {
		p.started[spec.App.Name] = sync.OnceFunc(p.starting.Done)
	}
	if cfg.NotifyReady {
		go func() {
			p.starting.Wait()
			if sent, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
				log.Warn("notifying readiness", "err", err)
			} else if sent {
				log.Debug("notified readiness")
			}
		}()
	}
	go func() {
		p.starting.Wait()
		// Once the apps have started, and again when what followed their
		// start (the launchers' exits, output copiers) is over.
		settle(log)
		time.Sleep(settleAgain)
		settle(log)
	}()
	results := make(chan result, len(cfg.Apps))
	for _, spec := range cfg.Apps {
		go func() {
			defer p.appStarted(spec.App.Name)
			results <- p.runApp(spec)
		}()
	}

	var (
		grace     <-chan time.Time
		stoppedBy os.Signal
		code      int
		failed    bool
		ran       bool
	)
	stop := func(sig os.Signal, why string) {
		if stoppedBy == nil {
			stoppedBy = sig
			log.Info("stopping pod", "reason", why, "grace", cfg.StopGracePeriod)
			grace = time.After(cfg.StopGracePeriod)
		}
		p.signalAll(sig, true)
	}
	done := ctx.Done()
	for left := len(cfg.Apps); left > 0; {
		select {
		case r := <-results:
			left--
			if !r.ran {
				continue
			}
			ran = true
			log.Info("app exited", "app", r.name, "status", r.status.ExitCode, "oomKilled", r.status.OOMKilled)
			if r.status.OOMKilled {
				// Said on the pod's stderr, where the user sees the
				// app's exit: a bare 137 does not say why.
				fmt.Fprintf(cfg.Stderr, "orbit: app %s was killed for running out of memory (its memory limit, --memory); it exits %d\n", r.name, r.status.ExitCode)
			}
			if len(cfg.Apps) == 1 {
				code = r.status.ExitCode
			} else if r.status.ExitCode != 0 && !failed {
				failed, code = true, r.status.ExitCode
				if left > 0 {
					stop(unix.SIGTERM, "app "+r.name+" failed")
				}
			}
		case sig := <-sigs:
			log.Debug("signal", "signal", sig)
			p.onSignal(sig, stop)
		case <-done:
			done = nil
			stop(unix.SIGTERM, "cancelled")
		case <-grace:
			grace = nil
			log.Warn("grace period over, killing what is left")
			p.killAll()
		}
	}
	p.finishOutput()
	if !ran && stoppedBy != nil {
		code = 128 + int(stoppedBy.(unix.Signal))
	}
	return code, nil
}

// signalAll sends sig to every app's current process. With stop set, no
// app or pre-start handler starts any more.
func (p *pod) signalAll(sig os.Signal, stop bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if stop {
		p.stopping = true
	}
	for name, pr := range p.running {
		if err := pr.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.log.Warn("forwarding signal", "app", name, "signal", sig, "err", err)
		}
	}
}

// killAll kills every process of every app: the whole cgroup where there
// is one.
func (p *pod) killAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopping, p.killed = true, true
	for name, pr := range p.running {
		if pr.group != nil {
			go func() {
				if err := pr.group.Kill(); err != nil {
					p.log.Warn("killing app", "app", name, "err", err)
				}
			}()
			continue
		}
		_ = pr.cmd.Process.Signal(unix.SIGKILL)
	}
}

// finishOutput waits for the output of every process to be copied; what
// is still open after copierTimeout (a process outside any cgroup that
// outlived its app) is cut off.
func (p *pod) finishOutput() {
	done := make(chan struct{})
	go func() { p.copiers.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(copierTimeout):
	}
	p.mu.Lock()
	for _, r := range p.readers {
		_ = r.Close()
	}
	p.mu.Unlock()
	<-done
}

// stdio returns the app's standard streams for a process: straight
// through for a single app whose writers are files, else pipes copied by
// goroutines (with the name[pid] prefix when the pod has several apps). It
// returns the write ends the parent must close after the start, and a
// function that starts the copiers once the pid is known (or, given 0
// because the start failed, closes the read ends).
func (p *pod) stdio(cmd *exec.Cmd, name string) (closeAfter []*os.File, startCopy func(pid int), err error) {
	single := len(p.cfg.Apps) == 1 && !p.cfg.Mutable
	logs := p.logs[name]
	if p.cfg.Interactive {
		cmd.Stdin = os.Stdin
	}
	var copies []func(pid int)
	for i, s := range []struct {
		w    io.Writer
		dst  *io.Writer
		prio int
	}{{p.cfg.Stdout, &cmd.Stdout, 6}, {p.cfg.Stderr, &cmd.Stderr, 3}} {
		var logFile io.Writer
		if logs[i] != nil {
			logFile = logs[i]
		}
		if f, ok := s.w.(*os.File); ok && single && logFile == nil {
			*s.dst = f
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			for _, f := range closeAfter {
				_ = f.Close()
			}
			return nil, nil, err
		}
		*s.dst = w
		closeAfter = append(closeAfter, w)
		p.readers = append(p.readers, r)
		dst, prio := s.w, s.prio
		copies = append(copies, func(pid int) {
			if pid <= 0 {
				_ = r.Close()
				return
			}
			pre := ""
			if !single {
				pre = prefix(name, pid)
			}
			w := dst
			if p.journal != nil && !single {
				w = &journalWriter{j: p.journal, ident: name, pid: pid, priority: prio, pre: pre, fallback: dst}
			}
			p.copiers.Add(1)
			go func() {
				defer p.copiers.Done()
				p.out.copyLines(w, r, pre, logFile)
				_ = r.Close()
			}()
		})
	}
	return closeAfter, func(pid int) {
		for _, c := range copies {
			c(pid)
		}
	}, nil
}

// isTerminal reports whether fd is a terminal.
func isTerminal(fd int) bool {
	_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	return err == nil
}

// onSignal acts on a signal to the pod: SIGHUP is passed on to the apps;
// halt and poweroff requests (systemd's) stop the pod with SIGTERM; any
// other caught signal stops it with that signal.
func (p *pod) onSignal(sig os.Signal, stop func(os.Signal, string)) {
	switch sig {
	case unix.SIGHUP:
		p.signalAll(sig, false)
	case sigHalt, sigPoweroff:
		stop(unix.SIGTERM, "shutdown requested")
	default:
		stop(sig, "signal "+unix.SignalName(sig.(unix.Signal)))
	}
}
