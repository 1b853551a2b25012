package contract

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestControlRoundTrip(t *testing.T) {
	// A directory deep enough that the socket's path is longer than a
	// socket address allows: the client reaches it through a descriptor.
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	sock := filepath.Join(dir, "control", "supervisor.sock")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The server listens from inside the directory, as the supervisor does
	// with its short path.
	wd, _ := os.Getwd()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	l, err := ListenControl("control/supervisor.sock")
	os.Chdir(wd)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(sock)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", fi, err)
	}
	if di, _ := os.Stat(filepath.Dir(sock)); di.Mode().Perm() != 0o700 {
		t.Fatalf("socket dir mode %v", di.Mode())
	}
	got := make(chan string, 1)
	go func() {
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			req, files, resp := ReadControlRequest(c)
			if resp == nil {
				switch req.Op {
				case OpAdd:
					for _, f := range files {
						f.WriteString("hello from the server\n")
						f.Close()
					}
					resp = &ControlResponse{}
				case OpStart:
					resp = ErrorResponse(ControlErrNotFound, "no app "+req.App)
				default:
					code := 3
					resp = &ControlResponse{Apps: []ControlAppState{{Name: "a", State: AppExited, ExitCode: &code}}}
				}
				got <- string(req.Op)
			}
			WriteControlResponse(c, resp)
			c.Close()
		}
	}()

	resp, err := CallControl(sock, ControlRequest{Op: OpState}, nil, 5*time.Second)
	if err != nil || len(resp.Apps) != 1 || *resp.Apps[0].ExitCode != 3 {
		t.Fatalf("state: %+v %v", resp, err)
	}
	<-got
	logf, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CallControl(sock, ControlRequest{Op: OpAdd, App: "a", Files: []string{"stdout"}}, []*os.File{logf}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	<-got
	if b, _ := os.ReadFile(logf.Name()); string(b) != "hello from the server\n" {
		t.Fatalf("the descriptor did not reach the server: %q", b)
	}
	_, err = CallControl(sock, ControlRequest{Op: OpStart, App: "x"}, nil, 5*time.Second)
	if !IsControlError(err, ControlErrNotFound) {
		t.Fatalf("want not-found, got %v", err)
	}
}

func TestDecodeControlRequest(t *testing.T) {
	for _, tc := range []struct {
		line, kind string
	}{
		{`{"version":1,"op":"state"}`, ""},
		{`{"version":1,"op":"start","app":"a"}`, ""},
		{`{"version":2,"op":"state"}`, ControlErrVersion},
		{`{"op":"state"}`, ControlErrVersion},
		{`{"version":1,"op":"start"}`, ControlErrInvalid},
		{`{"version":1,"op":"explode","app":"a"}`, ControlErrInvalid},
		{`{"version":1,"op":"add","app":"a","files":["stdin"]}`, ControlErrInvalid},
		{`not json`, ControlErrInvalid},
	} {
		_, resp := DecodeControlRequest([]byte(tc.line))
		kind := ""
		if resp != nil {
			kind = resp.ErrorKind
		}
		if kind != tc.kind {
			t.Errorf("%s: kind %q, want %q", tc.line, kind, tc.kind)
		}
	}
}

func TestControlVersionMismatch(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "s.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.AcceptUnix()
		if err != nil {
			return
		}
		c.Read(make([]byte, 1024))
		c.Write([]byte(`{"version":9}` + "\n"))
		c.Close()
	}()
	if _, err := CallControl(sock, ControlRequest{Op: OpState}, nil, 5*time.Second); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Fatalf("want a version error, got %v", err)
	}
}

func TestParseApp(t *testing.T) {
	a := AppArgs{Debug: true, App: "web", UUID: "u"}
	got, err := ParseApp(AppStart, a.Args())
	if err != nil || *got != a {
		t.Fatalf("%+v %v", got, err)
	}
	for _, bad := range [][]string{{"u"}, {"--app=a/b", "u"}, {"--app=..", "u"}, {"--app=a"}} {
		if _, err := ParseApp(AppStart, bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
