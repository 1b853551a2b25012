package stage2

import (
	"os"
	"strconv"
	"strings"
)

// Socket activation (the systemd protocol): a process is handed listening
// sockets as descriptors 3 and up, with LISTEN_FDS saying how many and
// LISTEN_PID naming it. orbit receives them, where it is started so, with
// github.com/coreos/go-systemd/v22/activation; SocketEnv is the one place
// that sets the variables for the process orbit hands sockets on to.

// SocketEnv returns env with the socket-activation variables set for n
// sockets, for the program this process is about to exec (an exec keeps
// the PID, which LISTEN_PID names), or with them removed when n is 0 so a
// program handed no sockets does not look for any. LISTEN_FDNAMES, when
// env has it, is kept for the sockets.
func SocketEnv(env []string, n int) []string {
	out := make([]string, 0, len(env)+2)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if k == "LISTEN_FDS" || k == "LISTEN_PID" || (k == "LISTEN_FDNAMES" && n == 0) {
			continue
		}
		out = append(out, kv)
	}
	if n > 0 {
		out = append(out, "LISTEN_FDS="+strconv.Itoa(n), "LISTEN_PID="+strconv.Itoa(os.Getpid()))
	}
	return out
}
