package tests

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// sockApp is a program that serves one connection on the listening socket
// handed to it by socket activation.
const sockApp = `package main

import (
	"fmt"
	"net"
	"os"
)

func main() {
	if os.Getenv("LISTEN_FDS") != "1" || os.Getenv("LISTEN_PID") != fmt.Sprint(os.Getpid()) {
		fmt.Println("not socket-activated:", os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_PID"))
		os.Exit(3)
	}
	l, err := net.FileListener(os.NewFile(3, "socket"))
	if err != nil {
		fmt.Println(err)
		os.Exit(4)
	}
	c, err := l.Accept()
	if err != nil {
		fmt.Println(err)
		os.Exit(5)
	}
	fmt.Fprintf(c, "hello from %s\n", os.Getenv("AC_APP_NAME"))
	c.Close()
}
`

// sockAppACI builds sockApp into a busybox image whose port is
// socket-activated.
func sockAppACI(t *testing.T) string {
	t.Helper()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "main.go"), sockApp)
	writeFile(t, filepath.Join(src, "go.mod"), "module sockapp\n\ngo 1.21\n")
	root := busyboxRootfs(t)
	build := exec.Command("go", "build", "-o", filepath.Join(root, "bin", "sockapp"), ".")
	build.Dir = src
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the test app: %v\n%s", err, out)
	}
	m := imageManifest("example.com/sockapp", "/bin/sockapp")
	m["app"].(map[string]any)["ports"] = []map[string]any{{"name": "http", "protocol": "tcp", "port": 8080, "socketActivated": true}}
	return writeACI(t, filepath.Join(t.TempDir(), "sockapp.aci"), root, m)
}

// A socket-activated unit's listening socket reaches the app whose port
// asks for it, in both flavours.
func TestSocketActivation(t *testing.T) {
	t.Parallel()
	aci := sockAppACI(t)
	for _, flavour := range []string{"fly", "nspawn"} {
		t.Run(flavour, func(t *testing.T) {
			t.Parallel() // its own env
			if flavour == "nspawn" {
				requireNspawn(t)
			}
			e := newEnv(t)
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			lf, err := l.(*net.TCPListener).File()
			if err != nil {
				t.Fatal(err)
			}
			defer lf.Close()
			// As systemd starts a socket-activated service: the socket as
			// descriptor 3, LISTEN_FDS, and LISTEN_PID naming the service.
			args := e.args("run", "--insecure-options=image", "--stage1-name="+flavour, aci)
			cmd := exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"`, binary}, args...)...)
			cmd.ExtraFiles = []*os.File{lf}
			var out syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			conn, err := net.DialTimeout("tcp", l.Addr().String(), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			line, err := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if err != nil || line != "hello from sockapp\n" {
				t.Fatalf("the app did not serve on the activation socket: %q %v; output:\n%s", line, err, out.String())
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("run: %v\n%s", err, out.String())
				}
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				t.Fatal("orbit run did not end")
			}
		})
	}
}
