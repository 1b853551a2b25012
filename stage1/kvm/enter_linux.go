package kvm

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/pod"
	"github.com/orbit-containers/orbit/stage1/supervisor"
)

// enterSocket, in the pod directory, is where the run entrypoint takes
// enter requests and hands them to the guest over the enter port. It is
// named relative to the pod directory, the working directory of both
// entrypoints, which keeps it clear of the length limit of socket paths.
const enterSocket = "kvm-enter.sock"

// maxEnterRequest bounds an enter request on the socket.
const maxEnterRequest = 1 << 20

// Enter is the enter entrypoint: it hands the run entrypoint the command
// and its own standard input, output and error (as descriptors over the
// pod's enter socket, root only), and exits with the command's status as
// the guest reports it.
func Enter(args []string) int { return pod.Main("stage1 kvm enter", args, enter) }

func enter(args []string) (int, error) {
	e, err := contract.ParseEnter(args)
	if err != nil {
		return 0, err
	}
	req, err := json.Marshal(supervisor.GuestEnterRequest{App: e.App, Command: e.Command, Term: os.Getenv("TERM")})
	if err != nil {
		return 0, err
	}
	var conn *net.UnixConn
	for wait := 0; ; wait++ {
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: enterSocket, Net: "unix"})
		if err == nil {
			conn = c
			break
		}
		if wait == 100 { // a pod that has just started may not listen yet
			return 0, fmt.Errorf("the pod does not take enter requests (is it running?): %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer conn.Close()
	// ^C and ^\ are for the command, which reads the terminal; the command
	// ends this process.
	signal.Ignore(syscall.SIGINT, syscall.SIGQUIT)
	rights := unix.UnixRights(int(os.Stdin.Fd()), int(os.Stdout.Fd()), int(os.Stderr.Fd()))
	if _, _, err := conn.WriteMsgUnix(req, rights, nil); err != nil {
		return 0, fmt.Errorf("asking the pod: %w", err)
	}
	reply, err := io.ReadAll(io.LimitReader(conn, 64))
	if err != nil {
		return 0, err
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(reply)))
	if err != nil || code < 0 || code > 255 {
		return 0, fmt.Errorf("the pod did not report the command's exit status: %w", errdefs.ErrNotFound)
	}
	return code, nil
}

// enterBroker takes enter requests on enterSocket and runs them, one at a
// time, over the guest's enter port.
type enterBroker struct {
	l    *net.UnixListener
	port *os.File
	mu   sync.Mutex
}

func listenEnter(port *os.File) (*enterBroker, error) {
	_ = os.Remove(enterSocket)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: enterSocket, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("the pod's enter socket: %w", err)
	}
	if err := os.Chmod(enterSocket, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	b := &enterBroker{l: l, port: port}
	go b.serve()
	return b, nil
}

func (b *enterBroker) close() {
	b.l.Close()
	_ = os.Remove(enterSocket)
}

func (b *enterBroker) serve() {
	for {
		c, err := b.l.AcceptUnix()
		if err != nil {
			return
		}
		go b.handle(c)
	}
}

// handle runs one request: only root's (the socket is root's too, this is
// a second lock).
func (b *enterBroker) handle(c *net.UnixConn) {
	defer c.Close()
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	var cred *unix.Ucred
	raw.Control(func(fd uintptr) { cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED) })
	if err != nil || cred.Uid != 0 {
		return
	}
	buf := make([]byte, maxEnterRequest)
	oob := make([]byte, unix.CmsgSpace(3*4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return
	}
	files := receivedFiles(oob[:oobn])
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if len(files) != 3 {
		return
	}
	code := b.run(buf[:n], files[0], files[1], files[2])
	fmt.Fprintf(c, "%d\n", code)
}

func receivedFiles(oob []byte) []*os.File {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil
	}
	var files []*os.File
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			unix.CloseOnExec(fd)
			files = append(files, os.NewFile(uintptr(fd), "enter"))
		}
	}
	return files
}

// run sends the request to the guest, its input after it, and copies the
// guest's output frames to the caller's descriptors until the exit frame.
// Only the caller's own output is written: nothing the guest sends names a
// path or a descriptor.
func (b *enterBroker) run(req []byte, stdin, stdout, stderr *os.File) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	var wmu sync.Mutex
	send := func(typ byte, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return supervisor.WriteGuestFrame(b.port, typ, p)
	}
	if err := send(supervisor.GuestFrameRequest, req); err != nil {
		return contract.ExitFailure
	}
	done := make(chan struct{})
	go func() {
		// The caller's stdin, until it ends or the command does.
		buf := make([]byte, 32<<10)
		for {
			n, err := stdin.Read(buf)
			select {
			case <-done:
				return
			default:
			}
			if n > 0 && send(supervisor.GuestFrameStdin, buf[:n]) != nil {
				return
			}
			if err != nil {
				send(supervisor.GuestFrameStdinEOF, nil)
				return
			}
		}
	}()
	defer close(done)
	for {
		typ, payload, err := supervisor.ReadGuestFrame(b.port)
		if err != nil {
			return contract.ExitFailure
		}
		switch typ {
		case supervisor.GuestFrameStdout:
			stdout.Write(payload)
		case supervisor.GuestFrameStderr:
			stderr.Write(payload)
		case supervisor.GuestFrameExit:
			code, err := strconv.Atoi(string(payload))
			if err != nil || code < 0 || code > 255 {
				return contract.ExitFailure
			}
			return code
		}
	}
}
