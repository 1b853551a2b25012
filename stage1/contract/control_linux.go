package contract

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// CallControl sends one request to the control socket at path, with files
// passed as descriptors (req.Files names them), and returns the response;
// a response that reports an error is returned with that error
// (a *ControlError). The socket is reached through a descriptor of its
// directory, so that a path longer than a socket address allows works too.
// timeout bounds the whole exchange.
func CallControl(path string, req ControlRequest, files []*os.File, timeout time.Duration) (*ControlResponse, error) {
	if len(files) != len(req.Files) {
		return nil, fmt.Errorf("control request names %d files but %d are given", len(req.Files), len(files))
	}
	req.Version = ControlProtocolVersion
	dir, err := os.OpenFile(filepath.Dir(path), oPath|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	defer dir.Close()
	addr := "/proc/self/fd/" + strconv.Itoa(int(dir.Fd())) + "/" + filepath.Base(path)
	d := net.Dialer{Timeout: timeout}
	c, err := d.Dial("unix", addr)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, unwrapOp(err))
	}
	conn := c.(*net.UnixConn)
	defer conn.Close()
	if timeout > 0 {
		_ = conn.SetDeadline(time.Now().Add(timeout))
	}
	line, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	line = append(line, '\n')
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = syscall.UnixRights(fds...)
	}
	if _, _, err := conn.WriteMsgUnix(line, oob, nil); err != nil {
		return nil, fmt.Errorf("control socket %s: sending: %w", path, unwrapOp(err))
	}
	r := bufio.NewReaderSize(io.LimitReader(conn, MaxControlMessage), 4096)
	respLine, err := r.ReadBytes('\n')
	if err != nil && !(errors.Is(err, io.EOF) && len(respLine) > 0) {
		return nil, fmt.Errorf("control socket %s: reading the answer: %w", path, unwrapOp(err))
	}
	var resp ControlResponse
	if err := json.Unmarshal(bytes.TrimSpace(respLine), &resp); err != nil {
		return nil, fmt.Errorf("control socket %s: malformed answer: %w", path, err)
	}
	if resp.Version != ControlProtocolVersion {
		return nil, fmt.Errorf("control socket %s: the supervisor speaks control protocol version %d, this orbit version %d", path, resp.Version, ControlProtocolVersion)
	}
	return &resp, resp.Err()
}

// ReadControlRequest reads one request line from conn, and the descriptors
// sent with it; descriptors beyond what the request names are closed.
func ReadControlRequest(conn *net.UnixConn) (*ControlRequest, []*os.File, *ControlResponse) {
	buf := make([]byte, 64*1024)
	oob := make([]byte, syscall.CmsgSpace(4*8))
	var line []byte
	var files []*os.File
	fail := func(resp *ControlResponse) (*ControlRequest, []*os.File, *ControlResponse) {
		for _, f := range files {
			f.Close()
		}
		return nil, nil, resp
	}
	for {
		n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
		if oobn > 0 {
			msgs, perr := syscall.ParseSocketControlMessage(oob[:oobn])
			if perr == nil {
				for _, m := range msgs {
					fds, ferr := syscall.ParseUnixRights(&m)
					if ferr != nil {
						continue
					}
					for _, fd := range fds {
						syscall.CloseOnExec(fd)
						files = append(files, os.NewFile(uintptr(fd), "control-file"))
					}
				}
			}
		}
		line = append(line, buf[:n]...)
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line = line[:i]
			break
		}
		if len(line) > MaxControlMessage {
			return fail(ErrorResponse(ControlErrInvalid, "request too long"))
		}
		if err != nil || n == 0 {
			return fail(ErrorResponse(ControlErrInvalid, "incomplete request"))
		}
	}
	req, resp := DecodeControlRequest(line)
	if resp != nil {
		return fail(resp)
	}
	if len(files) != len(req.Files) {
		return fail(ErrorResponse(ControlErrInvalid, fmt.Sprintf("request names %d files but carries %d", len(req.Files), len(files))))
	}
	return req, files, nil
}

// WriteControlResponse answers a request.
func WriteControlResponse(conn *net.UnixConn, resp *ControlResponse) error {
	resp.Version = ControlProtocolVersion
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	_, err = conn.Write(append(b, '\n'))
	return err
}

// ListenControl makes the control socket at path (its directory 0700, the
// socket 0600, any stale socket replaced).
func ListenControl(path string) (*net.UnixListener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := os.Chmod(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	old := syscall.Umask(0o177)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// unwrapOp drops net.OpError's address (the /proc path) from a message.
func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}

// oPath is O_PATH, which package syscall lacks (the contract uses the
// standard library only).
const oPath = 0x200000
