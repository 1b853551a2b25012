package supervisor

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"sync"
)

// journal sends the output of a multi-app pod's apps to systemd-journald
// over its native protocol (a datagram of FIELD=value lines per message),
// each line under the app's name as SYSLOG_IDENTIFIER, when the pod's
// output is a unit's journal stream. journald attributes each message to
// the unit from the sender's cgroup, which is below the unit's.
type journal struct {
	mu   sync.Mutex
	conn *net.UnixConn
}

// openJournal connects to journald's socket at path; nil when it cannot.
func openJournal(path string) *journal {
	if path == "" {
		return nil
	}
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return nil
	}
	return &journal{conn: c}
}

// journalWriter writes each line it is given (as copyLines writes them:
// one whole line per call, after the prefix pre) as one journal message.
// A line journald does not take goes to fallback as it is.
type journalWriter struct {
	j        *journal
	ident    string
	pid      int
	priority int // 6 (info) for stdout, 3 (err) for stderr
	pre      string
	fallback io.Writer
}

func (w *journalWriter) Write(b []byte) (int, error) {
	msg := bytes.TrimSuffix(bytes.TrimPrefix(b, []byte(w.pre)), []byte("\n"))
	if err := w.j.send(w.ident, w.pid, w.priority, msg); err != nil {
		return w.fallback.Write(b)
	}
	return len(b), nil
}

// send sends one message. A message holding a newline uses the protocol's
// binary form of a field (name, newline, 64-bit little-endian length, value).
func (j *journal) send(ident string, pid, priority int, msg []byte) error {
	var d bytes.Buffer
	d.WriteString("SYSLOG_IDENTIFIER=" + ident + "\n")
	d.WriteString("SYSLOG_PID=" + strconv.Itoa(pid) + "\n")
	d.WriteString("PRIORITY=" + strconv.Itoa(priority) + "\n")
	if bytes.IndexByte(msg, '\n') < 0 {
		d.WriteString("MESSAGE=")
		d.Write(msg)
		d.WriteByte('\n')
	} else {
		d.WriteString("MESSAGE\n")
		n := uint64(len(msg))
		for i := 0; i < 8; i++ {
			d.WriteByte(byte(n >> (8 * i)))
		}
		d.Write(msg)
		d.WriteByte('\n')
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	_, err := j.conn.Write(d.Bytes())
	return err
}
