package supervisor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// controlReadTimeout bounds how long a client may take to send its
// request.
const controlReadTimeout = 10 * time.Second

// appState is an app of a mutable pod: created (known, never started
// since it was added), running, or exited. The transitions are
// created|exited --start--> running --exit--> exited, and remove from
// created or exited.
type appState string

const (
	stateCreated appState = contract.AppCreated
	stateRunning appState = contract.AppRunning
	stateExited  appState = contract.AppExited
)

// mApp is one app of a mutable pod, owned by the pod's loop.
type mApp struct {
	spec  AppSpec
	state appState
	// done is closed when the app's current run ends.
	done      chan struct{}
	last      *Status // how its last run ended
	startedAt time.Time
}

// ctlOp is a control request handed from a connection to the loop; the
// loop (or a goroutine it starts) sends exactly one response on reply.
type ctlOp struct {
	req   *contract.ControlRequest
	files []*os.File
	reply chan *contract.ControlResponse
}

// mutablePod is the state of runMutable's loop.
type mutablePod struct {
	*pod
	apps    map[string]*mApp
	results chan result
	// later takes back requests that waited for an app's run to end.
	later    chan ctlOp
	live     int // apps running
	stopping bool
}

// runMutable runs a mutable pod until it is stopped: it serves the
// control socket, starts and stops apps as asked, and when SIGTERM (or
// SIGINT, a shutdown request, ctx) comes, stops every app in order and
// returns 0.
func (p *pod) runMutable(ctx context.Context, sigs chan os.Signal) (int, error) {
	l, err := contract.ListenControl(p.cfg.ControlSocket)
	if err != nil {
		return 0, fmt.Errorf("control socket %s: %w", p.cfg.ControlSocket, err)
	}
	ops := make(chan ctlOp)
	quit := make(chan struct{})
	go p.serveControl(l, ops, quit)
	defer func() {
		close(quit)
		l.Close()
		os.Remove(p.cfg.ControlSocket)
	}()
	if p.cfg.NotifyReady {
		if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
			p.log.Warn("notifying readiness", "err", err)
		}
	}
	m := &mutablePod{pod: p, apps: map[string]*mApp{}, results: make(chan result), later: make(chan ctlOp)}
	for _, spec := range p.cfg.Apps {
		m.apps[spec.App.Name] = &mApp{spec: spec, state: stateCreated}
		m.start(spec.App.Name)
	}
	var grace <-chan time.Time
	stop := func(sig os.Signal, why string) {
		if !m.stopping {
			m.stopping = true
			p.log.Info("stopping pod", "reason", why, "grace", p.cfg.StopGracePeriod)
			grace = time.After(p.cfg.StopGracePeriod)
		}
		p.signalAll(sig, true)
	}
	done := ctx.Done()
	for !m.stopping || m.live > 0 {
		select {
		case r := <-m.results:
			m.finished(r)
		case o := <-ops:
			m.handle(o)
		case o := <-m.later:
			m.handle(o)
		case sig := <-sigs:
			p.onSignal(sig, stop)
		case <-done:
			done = nil
			stop(unix.SIGTERM, "cancelled")
		case <-grace:
			grace = nil
			p.log.Warn("grace period over, killing what is left")
			p.killAll()
		}
	}
	p.finishOutput()
	p.mu.Lock()
	for name, l := range p.logs {
		closeLogs(l)
		delete(p.logs, name)
	}
	p.mu.Unlock()
	return 0, nil
}

// finished takes an app's end.
func (m *mutablePod) finished(r result) {
	a := m.apps[r.name]
	m.live--
	if a == nil {
		return
	}
	if r.ran {
		st := r.status
		a.last = &st
		a.state = stateExited
		m.log.Info("app exited", "app", r.name, "status", st.ExitCode, "oomKilled", st.OOMKilled)
	} else if a.last != nil {
		a.state = stateExited
	} else {
		a.state = stateCreated
	}
	close(a.done)
	a.done = nil
}

// handle answers a request, or hands it to a goroutine that answers once
// the change is done.
func (m *mutablePod) handle(o ctlOp) {
	if m.waitForEnd(o) {
		return
	}
	var resp *contract.ControlResponse
	switch o.req.Op {
	case contract.OpState:
		resp = &contract.ControlResponse{Apps: m.states()}
	case contract.OpAdd:
		resp = m.add(o.req.App, o.req.Files, o.files)
	case contract.OpStart:
		if resp = m.start(o.req.App); resp == nil {
			m.mu.Lock()
			ch := m.launchWait[o.req.App]
			m.mu.Unlock()
			go func() {
				if ch != nil {
					<-ch
				}
				o.reply <- &contract.ControlResponse{}
			}()
			return
		}
	case contract.OpStop:
		a := m.apps[o.req.App]
		if a == nil {
			resp = notFound(o.req.App)
			break
		}
		if a.state != stateRunning {
			resp = &contract.ControlResponse{}
			break
		}
		m.stopApp(o.req.App, a.done, o.reply)
		return
	case contract.OpRemove:
		resp = m.remove(o.req.App)
	default:
		resp = contract.ErrorResponse(contract.ControlErrInvalid, "unknown operation")
	}
	if o.req.Op != contract.OpAdd {
		closeFiles(o.files)
	}
	o.reply <- resp
}

// waitForEnd holds back a request to add, start or remove an app whose
// process has exited (its status is recorded, so to the pod directory's
// readers it has exited) while its run still ends, its post-stop handlers
// first: the request is handled once the run is over, rather than refused
// as if the app were running.
func (m *mutablePod) waitForEnd(o ctlOp) bool {
	switch o.req.Op {
	case contract.OpAdd, contract.OpStart, contract.OpRemove:
	default:
		return false
	}
	a := m.apps[o.req.App]
	if a == nil || a.state != stateRunning || a.done == nil {
		return false
	}
	m.mu.Lock()
	ended := m.ended[o.req.App]
	m.mu.Unlock()
	if !ended {
		return false
	}
	done := a.done
	go func() {
		<-done
		m.later <- o
	}()
	return true
}

func notFound(name string) *contract.ControlResponse {
	return contract.ErrorResponse(contract.ControlErrNotFound, fmt.Sprintf("the pod has no app %q", name))
}

// add makes an app known, created, from its spec in AppSpecDir. An app of
// that name that is not running is replaced.
func (m *mutablePod) add(name string, names []string, files []*os.File) *contract.ControlResponse {
	if a := m.apps[name]; a != nil && a.state == stateRunning {
		closeFiles(files)
		return contract.ErrorResponse(contract.ControlErrBusy, fmt.Sprintf("app %q is running", name))
	}
	if m.stopping {
		closeFiles(files)
		return contract.ErrorResponse(contract.ControlErrBusy, "the pod is stopping")
	}
	spec, err := m.readSpec(name)
	if err != nil {
		closeFiles(files)
		return contract.ErrorResponse(contract.ControlErrInvalid, err.Error())
	}
	var logs [2]*os.File
	for i, n := range names {
		if n == "stdout" {
			logs[0] = files[i]
		} else {
			logs[1] = files[i]
		}
	}
	m.mu.Lock()
	closeLogs(m.logs[name])
	m.logs[name] = logs
	m.mu.Unlock()
	m.apps[name] = &mApp{spec: spec, state: stateCreated}
	m.log.Info("app added", "app", name)
	return &contract.ControlResponse{}
}

// readSpec reads and checks an added app's spec.
func (m *mutablePod) readSpec(name string) (AppSpec, error) {
	var spec AppSpec
	path := filepath.Join(m.cfg.AppSpecDir, name+".json")
	f, err := os.Open(path)
	if err != nil {
		return spec, fmt.Errorf("app %q: %w", name, err)
	}
	defer f.Close()
	dec := json.NewDecoder(io.LimitReader(f, maxConfigSize))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return spec, fmt.Errorf("app %q: spec %s: %v: %w", name, path, err, errdefs.ErrInvalid)
	}
	if spec.App.Name != name {
		return spec, fmt.Errorf("app %q: spec %s is for app %q: %w", name, path, spec.App.Name, errdefs.ErrInvalid)
	}
	if err := m.cfg.validateApp(&spec); err != nil {
		return spec, err
	}
	if m.cfg.Metadata != nil {
		c := Config{Apps: []AppSpec{spec}, Metadata: m.cfg.Metadata}
		if err := c.setMetadataURL(); err != nil {
			return spec, err
		}
		spec = c.Apps[0]
	}
	return spec, nil
}

// start starts a created or exited app; nil means it is starting, and
// launchWait[name] is closed once its process runs or it gave up.
func (m *mutablePod) start(name string) *contract.ControlResponse {
	a := m.apps[name]
	switch {
	case a == nil:
		return notFound(name)
	case a.state == stateRunning:
		return contract.ErrorResponse(contract.ControlErrBusy, fmt.Sprintf("app %q is running already", name))
	case m.stopping:
		return contract.ErrorResponse(contract.ControlErrBusy, "the pod is stopping")
	}
	a.state, a.done, a.startedAt = stateRunning, make(chan struct{}), time.Now()
	m.live++
	ch := make(chan struct{})
	m.mu.Lock()
	m.launchWait[name] = ch
	m.mu.Unlock()
	spec := a.spec
	go func() {
		r := m.runApp(spec)
		m.launched(name)
		m.results <- r
	}()
	return nil
}

// launched closes the channel a start waits on (idempotent).
func (p *pod) launched(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.launchedLocked(name)
}

// launchedLocked is launched with mu held.
func (p *pod) launchedLocked(name string) {
	if ch := p.launchWait[name]; ch != nil {
		close(ch)
		delete(p.launchWait, name)
	}
}

// stopApp sends SIGTERM to the app's current process, SIGKILL to all of
// its processes after the grace period, and answers once it has exited.
func (m *mutablePod) stopApp(name string, done chan struct{}, reply chan<- *contract.ControlResponse) {
	m.mu.Lock()
	pr := m.running[name]
	m.mu.Unlock()
	if pr != nil {
		if err := pr.cmd.Process.Signal(unix.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			m.log.Warn("stopping app", "app", name, "err", err)
		}
	}
	grace := m.cfg.StopGracePeriod
	go func() {
		select {
		case <-done:
		case <-time.After(grace):
			m.log.Warn("grace period over, killing the app", "app", name)
			m.killApp(name)
			<-done
		}
		reply <- &contract.ControlResponse{}
	}()
}

// killApp kills every process of one app.
func (p *pod) killApp(name string) {
	p.mu.Lock()
	pr := p.running[name]
	p.mu.Unlock()
	if pr == nil {
		return
	}
	if pr.group != nil {
		if err := pr.group.Kill(); err != nil {
			p.log.Warn("killing app", "app", name, "err", err)
		}
		return
	}
	_ = pr.cmd.Process.Signal(unix.SIGKILL)
}

// remove forgets an app that is not running; an unknown app is no error
// (a command that recorded the removal and died before it said so).
func (m *mutablePod) remove(name string) *contract.ControlResponse {
	a := m.apps[name]
	if a == nil {
		return &contract.ControlResponse{}
	}
	if a.state == stateRunning {
		return contract.ErrorResponse(contract.ControlErrBusy, fmt.Sprintf("app %q is running; stop it first", name))
	}
	delete(m.apps, name)
	m.mu.Lock()
	closeLogs(m.logs[name])
	delete(m.logs, name)
	m.mu.Unlock()
	m.log.Info("app removed", "app", name)
	return &contract.ControlResponse{}
}

// states lists the apps, by name.
func (m *mutablePod) states() []contract.ControlAppState {
	out := []contract.ControlAppState{}
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, a := range m.apps {
		s := contract.ControlAppState{Name: name, State: string(a.state)}
		if a.state == stateRunning {
			s.StartedAt = a.startedAt
			if pr := m.running[name]; pr != nil {
				s.Pid = pr.cmd.Process.Pid
			}
		} else if a.last != nil {
			code := a.last.ExitCode
			s.ExitCode, s.StartedAt, s.ExitedAt = &code, a.last.StartedAt, a.last.ExitedAt
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// serveControl accepts connections until the listener is closed, reads
// one request from each and hands it to the loop; once quit is closed
// (the pod is ending) requests are refused.
func (p *pod) serveControl(l *net.UnixListener, ops chan<- ctlOp, quit <-chan struct{}) {
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(controlReadTimeout))
			req, files, resp := contract.ReadControlRequest(c)
			if resp == nil {
				p.log.Debug("control request", "op", req.Op, "app", req.App)
				reply := make(chan *contract.ControlResponse, 1)
				select {
				case ops <- ctlOp{req: req, files: files, reply: reply}:
					select {
					case resp = <-reply:
					case <-quit:
						resp = contract.ErrorResponse(contract.ControlErrBusy, "the pod stopped")
					}
				case <-quit:
					closeFiles(files)
					resp = contract.ErrorResponse(contract.ControlErrBusy, "the pod is stopping")
				}
			}
			if err := contract.WriteControlResponse(c, resp); err != nil {
				p.log.Debug("control answer", "err", err)
			}
		}()
	}
}

func closeFiles(fs []*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}

func closeLogs(l [2]*os.File) { closeFiles(l[:]) }
