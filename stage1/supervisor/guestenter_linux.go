package supervisor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage2"
)

// serveGuestEnter runs the host's enter requests, one at a time, until the
// port closes (see GuestPortEnter for the framing).
func (p *pod) serveGuestEnter(port io.ReadWriter) {
	frames := make(chan guestFrame, 16)
	go func() {
		defer close(frames)
		for {
			typ, payload, err := ReadGuestFrame(port)
			if err != nil {
				p.log.Debug("enter port closed", "err", err)
				return
			}
			frames <- guestFrame{typ, payload}
		}
	}()
	var wmu sync.Mutex
	write := func(typ byte, b []byte) {
		wmu.Lock()
		defer wmu.Unlock()
		for len(b) > GuestMaxFrame {
			_ = WriteGuestFrame(port, typ, b[:GuestMaxFrame])
			b = b[GuestMaxFrame:]
		}
		_ = WriteGuestFrame(port, typ, b)
	}
	for f := range frames {
		if f.typ != GuestFrameRequest {
			continue // stdin of a command that has ended
		}
		code := p.guestEnter(f.payload, frames, write)
		write(GuestFrameExit, []byte(strconv.Itoa(code)))
	}
}

type guestFrame struct {
	typ     byte
	payload []byte
}

// guestEnter runs one command beside an app, isolated as the app is (its
// root, through /proc/<pid>/root, its cgroup, user, capabilities and
// seccomp filter), and returns its exit status.
func (p *pod) guestEnter(reqData []byte, frames <-chan guestFrame, write func(byte, []byte)) int {
	fail := func(err error) int {
		write(GuestFrameStderr, []byte("enter: "+err.Error()+"\n"))
		return contract.ExitFailure
	}
	var req GuestEnterRequest
	if err := json.Unmarshal(reqData, &req); err != nil || len(req.Command) == 0 {
		return fail(fmt.Errorf("bad request"))
	}
	var spec *AppSpec
	for i := range p.cfg.Apps {
		if p.cfg.Apps[i].App.Name == req.App {
			spec = &p.cfg.Apps[i]
		}
	}
	if spec == nil {
		return fail(fmt.Errorf("the pod has no app %q", req.App))
	}
	data, err := os.ReadFile(p.cfg.StatusDir + "/" + req.App + ".pid")
	if err != nil {
		return fail(fmt.Errorf("app %q is not running in the pod", req.App))
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 1 {
		return fail(fmt.Errorf("app %q is not running in the pod", req.App))
	}
	a := spec.App
	env := a.Env
	if req.Term != "" {
		env = nil
		for _, kv := range a.Env {
			if !strings.HasPrefix(kv, "TERM=") {
				env = append(env, kv)
			}
		}
		env = append(env, "TERM="+req.Term)
	}
	cmd, err := stage2.Command(stage2.App{
		Name:              a.Name,
		Root:              fmt.Sprintf("/proc/%d/root", pid),
		Exec:              req.Command,
		Env:               env,
		OOMScoreAdj:       a.OOMScoreAdj,
		Rlimits:           a.Rlimits,
		User:              a.User,
		Group:             a.Group,
		SupplementaryGIDs: a.SupplementaryGIDs,
		Capabilities:      a.Capabilities,
		Seccomp:           a.Seccomp,
		NoNewPrivileges:   a.NoNewPrivileges,
	})
	if err != nil {
		return fail(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fail(err)
	}
	var copies sync.WaitGroup
	var pipes []*os.File
	for _, s := range []struct {
		dst *io.Writer
		typ byte
	}{{&cmd.Stdout, GuestFrameStdout}, {&cmd.Stderr, GuestFrameStderr}} {
		r, w, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		*s.dst = w
		pipes = append(pipes, w)
		copies.Add(1)
		go func() {
			defer copies.Done()
			defer r.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := r.Read(buf)
				if n > 0 {
					write(s.typ, buf[:n])
				}
				if err != nil {
					return
				}
			}
		}()
	}
	var ch <-chan exit
	start := func() error {
		var err error
		ch, err = p.reaper.start(cmd)
		return err
	}
	if p.layout != nil {
		if g, gerr := p.layout.GroupOf(pid); gerr == nil {
			inner := start
			start = func() error { return g.StartIn(cmd, inner) }
		}
	}
	err = start()
	for _, f := range pipes {
		f.Close()
	}
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
	if err != nil {
		stdin.Close()
		copies.Wait()
		return fail(err)
	}
	stdinOpen := true
	for {
		select {
		case e := <-ch:
			stdin.Close()
			copies.Wait()
			return e.code()
		case f, ok := <-frames:
			if !ok {
				frames = nil
				continue
			}
			switch {
			case f.typ == GuestFrameStdin && stdinOpen:
				if _, err := stdin.Write(f.payload); err != nil && !errors.Is(err, os.ErrClosed) {
					stdin.Close()
					stdinOpen = false
				}
			case f.typ == GuestFrameStdinEOF && stdinOpen:
				stdin.Close()
				stdinOpen = false
			}
		}
	}
}
