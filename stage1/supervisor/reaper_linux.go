package supervisor

import (
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/stage1/contract"
)

// exit is how and when a process ended.
type exit struct {
	status unix.WaitStatus
	at     time.Time
}

// code is the shell convention: the exit code, or 128+signal.
func (e exit) code() int {
	if e.status.Signaled() {
		return contract.ExitSignaled(e.status.Signal())
	}
	return e.status.ExitStatus()
}

// reaper is the only waiter for the supervisor's children: it reaps every
// child with wait4(-1) whenever SIGCHLD arrives, whether the supervisor
// started it or it was re-parented to it (an orphaned grandchild), and hands
// the statuses of the processes it started to whoever waits for them.
//
// Nothing else in the process may wait for children: os/exec's Cmd.Wait is
// never called. Starting a process and registering its PID happen under the
// same lock the reaping loop takes, so a process that dies at once is never
// reaped before it is known (and os/exec's own wait for a child whose exec
// failed cannot race with the loop either).
type reaper struct {
	log     *slog.Logger
	sigchld chan os.Signal
	stop    chan struct{}
	done    chan struct{}

	mu      sync.Mutex
	waiting map[int]chan exit
}

func newReaper(log *slog.Logger) *reaper {
	r := &reaper{
		log:     log,
		sigchld: make(chan os.Signal, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		waiting: map[int]chan exit{},
	}
	signal.Notify(r.sigchld, unix.SIGCHLD)
	go r.loop()
	return r
}

// reaperSafetyNet is how often the reaper looks for exited children
// without being told.
const reaperSafetyNet = time.Minute

func (r *reaper) loop() {
	defer close(r.done)
	// The periodic pass is a safety net only: SIGCHLD notifications
	// coalesce, but every pass reaps all that is there, and a child that
	// exits after a pass's last wait4 sends a SIGCHLD of its own. It is
	// rare, so that an idle pod's PID 1 does not wake up every second
	// (each wake-up faults pages of the binary back in: see settle).
	tick := time.NewTicker(reaperSafetyNet)
	defer tick.Stop()
	for {
		select {
		case <-r.sigchld:
		case <-tick.C:
		case <-r.stop:
			r.reap()
			return
		}
		r.reap()
	}
}

// reap collects every exited child.
func (r *reaper) reap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return // ECHILD: no children; 0: none exited
		}
		e := exit{status: ws, at: time.Now()}
		if ch, ok := r.waiting[pid]; ok {
			delete(r.waiting, pid)
			ch <- e
			continue
		}
		r.log.Debug("reaped orphan", "pid", pid, "status", e.code())
	}
}

// start starts cmd and returns a channel that receives its exit. The
// process's os.Process is released once it has exited.
func (r *reaper) start(cmd *exec.Cmd) (<-chan exit, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ch := make(chan exit, 1)
	r.waiting[cmd.Process.Pid] = ch
	return ch, nil
}

// close stops the loop after a last pass and stops SIGCHLD notification.
func (r *reaper) close() {
	signal.Stop(r.sigchld)
	close(r.stop)
	<-r.done
}
