package stage2

import (
	"os"
	"slices"
	"strconv"
	"testing"
)

func TestSocketEnv(t *testing.T) {
	in := []string{"PATH=/bin", "LISTEN_FDS=9", "LISTEN_PID=1", "LISTEN_FDNAMES=http", "LISTEN_FDSX=keep"}
	got := SocketEnv(in, 2)
	want := []string{"PATH=/bin", "LISTEN_FDNAMES=http", "LISTEN_FDSX=keep", "LISTEN_FDS=2", "LISTEN_PID=" + strconv.Itoa(os.Getpid())}
	if !slices.Equal(got, want) {
		t.Errorf("with sockets: %q, want %q", got, want)
	}
	got = SocketEnv(in, 0)
	want = []string{"PATH=/bin", "LISTEN_FDSX=keep"}
	if !slices.Equal(got, want) {
		t.Errorf("without sockets: %q, want %q", got, want)
	}
	if in[1] != "LISTEN_FDS=9" {
		t.Error("SocketEnv changed its input")
	}
}
