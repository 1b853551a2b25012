package tests

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// notifySocket listens like a service manager waiting for sd_notify
// messages and collects what arrives.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	msgs := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	return path, msgs
}

// Under a service manager that waits for readiness (Type=notify), orbit
// reports the pod ready once its app has started, in both flavours.
func TestNotifyReadyWhenAppStarted(t *testing.T) {
	t.Parallel()
	for _, flavour := range []string{"fly", "nspawn"} {
		t.Run(flavour, func(t *testing.T) {
			t.Parallel() // its own env
			if flavour == "nspawn" {
				requireNspawn(t)
			}
			e := newEnv(t)
			path, msgs := notifySocket(t)
			e.ExtraEnv = []string{"NOTIFY_SOCKET=" + path}
			aci := busyboxACI(t, "example.com/svc", "/bin/sh", "-c", "echo started; sleep 3")
			cmd := e.command("run", "--insecure-options=image", "--stage1-name="+flavour, aci)
			var out syncBuffer
			cmd.Stdout = &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			// Other messages (nspawn's STATUS=...) may come first.
			timeout := time.After(20 * time.Second)
		wait:
			for {
				select {
				case m := <-msgs:
					if strings.Contains(m, "READY=1") {
						break wait
					}
				case err := <-done:
					t.Fatalf("orbit run ended (%v) without notifying readiness; output %q", err, out.String())
				case <-timeout:
					t.Fatal("no readiness notification")
				}
			}
			if err := <-done; err != nil {
				t.Fatalf("run: %v", err)
			}
		})
	}
}

// An app that reports its own readiness gets the socket, and orbit leaves
// the report to it.
func TestNotifyLeftToAppThatSupportsIt(t *testing.T) {
	t.Parallel()
	for _, flavour := range []string{"fly", "nspawn"} {
		t.Run(flavour, func(t *testing.T) {
			t.Parallel() // its own env
			if flavour == "nspawn" {
				requireNspawn(t)
			}
			e := newEnv(t)
			path, msgs := notifySocket(t)
			e.ExtraEnv = []string{"NOTIFY_SOCKET=" + path}
			m := imageManifest("example.com/notifier", "/bin/sh", "-c", "test -S \"$NOTIFY_SOCKET\" && echo socket-at=$NOTIFY_SOCKET; sleep 1")
			m["annotations"] = []map[string]string{{"name": "appc.io/executor/supports-systemd-notify", "value": "true"}}
			aci := writeACI(t, filepath.Join(t.TempDir(), "notifier.aci"), busyboxRootfs(t), m)
			r := e.run("run", "--insecure-options=image", "--stage1-name="+flavour, aci)
			if r.Code != 0 || !strings.Contains(r.Stdout, "socket-at=") {
				t.Fatalf("the app did not get the notify socket: %s", r)
			}
			for {
				select {
				case m := <-msgs:
					if strings.Contains(m, "READY=1") {
						t.Fatalf("orbit reported readiness for an app that does so itself: %q", m)
					}
					continue
				default:
				}
				break
			}
		})
	}
}
