package stage2

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// LauncherName is the argv[0] under which the orbit binary acts as the
// launcher ("<dir>/<base>", see cmd/orbit's entrypoints).
const LauncherName = "stage2/launch"

// specVersion versions the spec the launcher reads; the launcher is always
// the caller's own binary, so it only guards against mixing binaries.
const specVersion = 1

// maxSpec bounds the spec the launcher reads.
const maxSpec = 16 << 20

// spec is what travels from Command to Main.
type spec struct {
	Version int `json:"version"`
	App     App `json:"app"`
}

// Command returns an unstarted command that runs app through the launcher:
// the running binary (/proc/self/exe) re-executed as LauncherName in a new
// mount namespace. The caller sets Stdin, Stdout and Stderr, may OR more
// CLONE_NEW* flags into SysProcAttr.Cloneflags (CLONE_NEWNS must stay) and
// append ExtraFiles (the first App.PassFiles of them reach the app as
// descriptors 4 and up), then
// starts it; the app keeps the launcher's PID. The launcher's exit status is
// the app's, or ExitSetupFailed, ExitNotExecutable or ExitNotFound when the
// app could not be started (one line on stderr says why).
//
// The spec travels as JSON in a sealed memfd inherited as descriptor 3
// (ExtraFiles[0]), never in argv or the environment, where other users
// could read it and where its size is limited. The launcher closes it
// before the exec; the caller may close ExtraFiles[0] once the command has
// started.
func Command(app App) (*exec.Cmd, error) {
	return CommandWithSockets(app, nil)
}

// CommandWithSockets is Command for an app that is handed listening
// sockets (systemd socket activation): the app gets them as descriptors 3
// and up, with LISTEN_FDS and LISTEN_PID set for it. The sockets are
// duplicated, so the caller keeps its own and may close the command's
// ExtraFiles once it has started, as with Command. The spec then travels
// in the descriptor after the sockets, and passed files follow it.
func CommandWithSockets(app App, sockets []*os.File) (*exec.Cmd, error) {
	app.ListenFDs = len(sockets)
	if err := app.Validate(); err != nil {
		return nil, err
	}
	data, err := json.Marshal(spec{Version: specVersion, App: app})
	if err != nil {
		return nil, fmt.Errorf("app %q: encode spec: %w", app.Name, err)
	}
	f, err := sealedMemfd("orbit-stage2-spec", data)
	if err != nil {
		return nil, fmt.Errorf("app %q: %w", app.Name, err)
	}
	var files []*os.File
	for _, s := range sockets {
		fd, err := unix.FcntlInt(s.Fd(), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			for _, g := range append(files, f) {
				g.Close()
			}
			return nil, fmt.Errorf("app %q: passing a socket: %w", app.Name, err)
		}
		files = append(files, os.NewFile(uintptr(fd), s.Name()))
	}
	files = append(files, f)
	attr := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	if app.DieWithParent {
		attr.Pdeathsig = syscall.SIGKILL
	}
	return &exec.Cmd{
		Path: "/proc/self/exe",
		Args: []string{LauncherName, fmt.Sprintf("--spec-fd=%d", 3+len(sockets))},
		// The launcher needs no environment of its own (the app's is in
		// the spec). Asynchronous preemption is turned off so no signal
		// interrupts the few instructions between the seccomp filter and
		// the exec.
		Env:         []string{"GODEBUG=asyncpreemptoff=1"},
		ExtraFiles:  files,
		SysProcAttr: attr,
	}, nil
}

// sealedMemfd returns a read-only, sealed in-memory file holding data.
func sealedMemfd(name string, data []byte) (*os.File, error) {
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, fmt.Errorf("write spec: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal spec: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Main is the launcher's entry point: args are its arguments after argv[0]
// (--spec-fd=N). It reads the spec and calls Launch; it returns only when
// the app could not be started, with the exit status to use, after printing
// one line on stderr:
//
//	stage2: app "hello": chdir /nope: no such file or directory
func Main(args []string) int {
	app, err := readSpec(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage2: %v\n", err)
		return ExitSetupFailed
	}
	err = Launch(app)
	fmt.Fprintf(os.Stderr, "stage2: %v\n", err)
	return ExitCode(err)
}

// readSpec parses the launcher's arguments and reads the spec they point
// to, closing its descriptor.
func readSpec(args []string) (App, error) {
	fs := flag.NewFlagSet(LauncherName, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fd := fs.Int("spec-fd", -1, "descriptor holding the app's spec")
	if err := fs.Parse(args); err != nil {
		return App{}, fmt.Errorf("arguments: %w: %w", err, errdefs.ErrInvalid)
	}
	if *fd < 3 || fs.NArg() != 0 {
		return App{}, fmt.Errorf("usage: %s --spec-fd=N: %w", LauncherName, errdefs.ErrInvalid)
	}
	unix.CloseOnExec(*fd)
	f := os.NewFile(uintptr(*fd), "spec")
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSpec+1))
	if err != nil {
		return App{}, fmt.Errorf("read spec from descriptor %d: %w", *fd, err)
	}
	if len(data) > maxSpec {
		return App{}, fmt.Errorf("spec larger than %d bytes: %w", maxSpec, errdefs.ErrInvalid)
	}
	var s spec
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return App{}, fmt.Errorf("decode spec: %w: %w", err, errdefs.ErrInvalid)
	}
	if s.Version != specVersion {
		return App{}, fmt.Errorf("spec version %d, want %d: %w", s.Version, specVersion, errdefs.ErrInvalid)
	}
	return s.App, nil
}
