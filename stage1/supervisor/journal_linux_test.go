package supervisor

import (
	"bytes"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

func TestJournalWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "socket")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	j := openJournal(path)
	if j == nil {
		t.Fatal("no journal")
	}
	var fallback bytes.Buffer
	w := &journalWriter{j: j, ident: "web", pid: 7, priority: 3, pre: prefix("web", 7), fallback: &fallback}
	w.Write([]byte(prefix("web", 7) + "it broke\n"))
	buf := make([]byte, 4096)
	n, err := l.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	got := string(buf[:n])
	for _, want := range []string{"SYSLOG_IDENTIFIER=web\n", "SYSLOG_PID=7\n", "PRIORITY=3\n", "MESSAGE=it broke\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("datagram %q lacks %q", got, want)
		}
	}
	if fallback.Len() != 0 {
		t.Errorf("fallback got %q", fallback.String())
	}
	l.Close()
	w.Write([]byte(prefix("web", 7) + "lost\n"))
	if !strings.Contains(fallback.String(), "web[7]: lost") {
		t.Errorf("a line journald did not take is lost, fallback %q", fallback.String())
	}
}
