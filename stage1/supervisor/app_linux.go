package supervisor

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/stage1/cgroup"
	"github.com/orbit-containers/orbit/stage2"
)

// Roles of the processes an app runs.
type role string

const (
	rolePreStart role = "pre-start"
	roleApp      role = "app"
	rolePostStop role = "post-stop"
)

// errStopped: the pod is stopping, so the process was not started.
var errStopped = errors.New("pod is stopping")

// runApp runs one app from its pre-start handlers to its post-stop ones
// and returns how it ended. Post-stop handlers run after the app exits, and
// also after a pre-start handler failed; processes the app leaves behind in
// its cgroup are killed before them and after them.
func (p *pod) runApp(spec AppSpec) result {
	name := spec.App.Name
	res := result{name: name}
	defer func() {
		p.mu.Lock()
		delete(p.ended, name)
		p.mu.Unlock()
	}()
	fail := func(err error) result {
		p.log.Error("app failed to start", "app", name, "err", err)
		now := time.Now()
		res.status = Status{ExitCode: ExitSetupFailed, StartedAt: now, ExitedAt: now, Error: err.Error()}
		p.record(name, res.status)
		return res
	}
	if p.isStopping() {
		return res
	}
	res.ran = true

	var group *cgroup.Group
	if p.layout != nil {
		gpath := path.Join(p.cfg.CgroupParent, name)
		g, err := p.layout.Create(gpath, spec.Limits)
		if err != nil {
			return fail(err)
		}
		group = g
		defer func() {
			if err := p.layout.Remove(gpath); err != nil {
				p.log.Warn("removing app cgroup", "app", name, "err", err)
			}
		}()
	}

	st := &res.status
	preFailed := false
	for _, argv := range spec.PreStart {
		e, startedAt, err := p.exec(spec, group, argv, rolePreStart)
		if errors.Is(err, errStopped) {
			res.ran = false
			return res
		}
		if err != nil {
			return fail(fmt.Errorf("pre-start handler %s: %w", quoteArgv(argv), err))
		}
		if e.code() != 0 {
			*st = statusOf(e, startedAt)
			st.Error = fmt.Sprintf("pre-start handler %s exited with status %d", quoteArgv(argv), e.code())
			preFailed = true
			break
		}
	}
	if !preFailed {
		e, startedAt, err := p.exec(spec, group, spec.App.Exec, roleApp)
		if errors.Is(err, errStopped) {
			res.ran = false
			return res
		}
		if err != nil {
			return fail(err)
		}
		*st = statusOf(e, startedAt)
	}
	p.killLeftovers(name, group)
	if group != nil {
		oom, err := group.OOMKilled()
		if err != nil {
			p.log.Warn("reading OOM state", "app", name, "err", err)
		}
		st.OOMKilled = oom
	}
	p.record(name, *st)
	p.mu.Lock()
	p.ended[name] = true
	p.mu.Unlock()
	if p.cfg.StatusDir != "" {
		// Gone once the status is recorded: a reader that finds neither
		// file knows the app has not run (since it was added).
		_ = os.Remove(filepath.Join(p.cfg.StatusDir, name+".pid"))
	}

	for _, argv := range spec.PostStop {
		e, _, err := p.exec(spec, group, argv, rolePostStop)
		if errors.Is(err, errStopped) {
			p.log.Warn("post-stop handler skipped: the pod was killed", "app", name, "handler", quoteArgv(argv))
			continue
		}
		if err != nil {
			p.log.Error("post-stop handler", "app", name, "handler", quoteArgv(argv), "err", err)
			continue
		}
		if e.code() != 0 {
			p.log.Warn("post-stop handler failed", "app", name, "handler", quoteArgv(argv), "status", e.code())
		}
	}
	p.killLeftovers(name, group)
	return res
}

// exec runs argv as a process of the app (the app itself or a handler)
// through the stage2 launcher, in the app's cgroup, and waits for it.
func (p *pod) exec(spec AppSpec, group *cgroup.Group, argv []string, r role) (exit, time.Time, error) {
	name := spec.App.Name
	app := spec.App
	app.Exec = argv
	if r != roleApp {
		// Event handlers run as root in the app's root, as rkt ran
		// them, so a pre-start can prepare what the app's user may not;
		// they keep the app's capabilities and seccomp filter.
		app.User, app.Group, app.SupplementaryGIDs = "0", "0", nil
	}
	var sockets []*os.File
	if spec.SocketActivated && r == roleApp {
		sockets = p.sockets
	}
	pr, ch, startedAt, err := p.launch(app, sockets, group, r)
	if err != nil {
		return exit{}, time.Time{}, err
	}
	pid := pr.cmd.Process.Pid
	p.log.Debug("started", "app", name, "role", r, "pid", pid, "argv", argv)
	e := <-ch
	p.forget(name, pr)
	p.log.Debug("exited", "app", name, "role", r, "pid", pid, "status", e.code())
	return e, startedAt, nil
}

// launch starts the process and makes it the app's current one, unless the
// pod is stopping (for pre-start handlers and the app) or killed (for
// everything).
func (p *pod) launch(app stage2.App, sockets []*os.File, group *cgroup.Group, r role) (*proc, <-chan exit, time.Time, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.killed || (p.stopping && r != rolePostStop) {
		return nil, nil, time.Time{}, errStopped
	}
	cmd, err := stage2.CommandWithSockets(app, sockets)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// A session of its own: signals meant for the supervisor's process
	// group (a terminal's ^C) reach apps only through the supervisor.
	cmd.SysProcAttr.Setsid = true
	if p.cfg.Interactive && isTerminal(0) {
		cmd.SysProcAttr.Setctty = true
		cmd.SysProcAttr.Ctty = 0
	}
	closeAfter, startCopy, err := p.stdio(cmd, app.Name)
	if err != nil {
		return nil, nil, time.Time{}, err
	}
	var ch <-chan exit
	// The start time is taken before the process can exit (and be
	// reaped, with its exit time), so an app never ends before it began.
	var startedAt time.Time
	startCmd := func() (err error) {
		startedAt = time.Now()
		ch, err = p.reaper.start(cmd)
		return err
	}
	if group != nil {
		err = group.StartIn(cmd, startCmd)
	} else {
		err = startCmd()
	}
	for _, f := range append(closeAfter, cmd.ExtraFiles...) {
		_ = f.Close()
	}
	if err != nil {
		startCopy(0)
		return nil, nil, time.Time{}, err
	}
	startCopy(cmd.Process.Pid)
	pr := &proc{cmd: cmd, group: group}
	p.running[app.Name] = pr
	if r == roleApp {
		p.appStarted(app.Name)
		p.launchedLocked(app.Name)
	}
	if r == roleApp && p.cfg.StatusDir != "" {
		// Where the app runs, for `enter`: written by the supervisor, never
		// taken from anything the app controls.
		if err := writeFileAtomic(p.cfg.StatusDir, app.Name+".pid", []byte(strconv.Itoa(cmd.Process.Pid)), startedAt); err != nil {
			p.log.Warn("recording the app's pid", "app", app.Name, "err", err)
		}
	}
	return pr, ch, startedAt, nil
}

func (p *pod) forget(name string, pr *proc) {
	p.mu.Lock()
	if p.running[name] == pr {
		delete(p.running, name)
	}
	p.mu.Unlock()
	_ = pr.cmd.Process.Release()
}

func (p *pod) isStopping() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopping
}

// killLeftovers kills what the app's processes left in its cgroup.
func (p *pod) killLeftovers(name string, group *cgroup.Group) {
	if group == nil {
		return
	}
	if err := group.Kill(); err != nil {
		p.log.Warn("killing leftover processes", "app", name, "err", err)
	}
}

// record writes the app's status files, if the pod has a status directory.
func (p *pod) record(name string, st Status) {
	if p.cfg.StatusDir == "" {
		return
	}
	if err := writeStatus(p.cfg.StatusDir, name, st); err != nil {
		p.log.Error("recording exit status", "app", name, "err", err)
	}
}

func statusOf(e exit, startedAt time.Time) Status {
	st := Status{ExitCode: e.code(), StartedAt: startedAt, ExitedAt: e.at}
	if e.status.Signaled() {
		st.Signal = unix.SignalName(e.status.Signal())
	}
	return st
}

func quoteArgv(argv []string) string {
	return fmt.Sprintf("%q", strings.Join(argv, " "))
}
