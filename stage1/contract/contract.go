// Package contract is the stage1 contract in one place: what stage0 and a
// stage1 flavour agree on so that either can be swapped without rebuilding
// the other. It is rkt's stage1 interface (up to interface version 4), and
// Documentation/design.md ("The stage1 contract" and "A pod directory")
// describes it in prose; this file and layout.go are its definition in
// code:
//
//   - the annotations by which a stage1 image names its entrypoints, and the
//     interface version it implements (Entrypoint, AnnotationInterfaceVersion);
//   - the arguments of each entrypoint, built by stage0 and parsed by every
//     flavour with the same code (RunOptions, EnterArgs, GCArgs, StopArgs and
//     their Parse functions), with the interface version that introduced each
//     run flag (RunFlagSince);
//   - the pod lock stage0 hands to the run entrypoint (LockFDEnv, TakeLock);
//   - the exit statuses orbit reserves (ExitFailure and the app statuses);
//   - the pod directory's layout (layout.go): every name both sides read or
//     write, as functions of the pod directory and of app names.
//
// The package depends on the standard library only, so the small pod
// supervisor binary can use it too.
package contract

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// An Entrypoint is one of the programs a stage1 image provides, named by an
// annotation of its image manifest whose value is a path inside its rootfs.
type Entrypoint string

// The entrypoints, a closed set.
const (
	// Run runs a pod (see RunOptions).
	Run Entrypoint = "run"
	// Enter runs a command beside a running app (see EnterArgs).
	Enter Entrypoint = "enter"
	// GC releases what stage1 made outside the pod directory (see GCArgs).
	GC Entrypoint = "gc"
	// Stop stops a running pod (see StopArgs).
	Stop Entrypoint = "stop"
)

// Entrypoints lists every entrypoint, in the order they are documented.
func Entrypoints() []Entrypoint { return []Entrypoint{Run, Enter, GC, Stop} }

// annotationPrefix starts the name of every stage1 annotation (rkt's).
const annotationPrefix = "coreos.com/rkt/stage1/"

// Annotation is the image manifest annotation that names the entrypoint.
func (e Entrypoint) Annotation() string { return annotationPrefix + string(e) }

const (
	// AnnotationInterfaceVersion, in a stage1 image manifest, is the
	// interface version the image implements; absent, it is 1.
	AnnotationInterfaceVersion = annotationPrefix + "interface-version"
	// AnnotationMutable, in a pod manifest, says whether apps may be added
	// to and removed from the running pod ("false": orbit's pods are not).
	AnnotationMutable = annotationPrefix + "mutable"
)

// Interface versions: each adds run flags (see RunFlagSince).
const (
	// MinInterfaceVersion is the version of an image that names none.
	MinInterfaceVersion = 1
	// InterfaceVersion is the version orbit's stage0 and built-in flavours
	// implement.
	InterfaceVersion = 4
)

// ParseInterfaceVersion reads the value of AnnotationInterfaceVersion
// (ok false when the image has none): anything that is not a positive
// number counts as MinInterfaceVersion, as in rkt.
func ParseInterfaceVersion(value string, ok bool) int {
	if !ok {
		return MinInterfaceVersion
	}
	n, err := strconv.Atoi(strings.TrimSpace(value))
	if err != nil || n < MinInterfaceVersion {
		return MinInterfaceVersion
	}
	return n
}

// Exit statuses orbit reserves. An entrypoint's (and so `orbit run`'s)
// exit status is the pod's: its app's for a one-app pod. These are what a
// pod's status is when the app did not decide it.
const (
	// ExitFailure: orbit failed (stage0, or a stage1 entrypoint), not the
	// app; the one line on stderr says why.
	ExitFailure = 254
	// ExitAppSetupFailed: the stage2 launcher failed before it could run
	// the app (an invalid spec, a mount, the user, capabilities...).
	ExitAppSetupFailed = 125
	// ExitAppNotExecutable: the app's program was found but could not be
	// executed (permission denied, bad format).
	ExitAppNotExecutable = 126
	// ExitAppNotFound: the app's program does not exist.
	ExitAppNotFound = 127
	// exitSignalBase plus n is the status of an app killed by signal n.
	exitSignalBase = 128
)

// ExitSignaled is the status of a process that signal sig killed, as a
// shell reports it.
func ExitSignaled(sig syscall.Signal) int { return exitSignalBase + int(sig) }

// LockFDEnv names the environment variable through which stage0 hands the
// run entrypoint the pod lock: the number of an inherited descriptor of the
// pod directory, locked exclusively. The pod is running while a process
// holds it.
const LockFDEnv = "RKT_LOCK_FD"

// LockFDEnvVar is the LockFDEnv environment entry for descriptor fd.
func LockFDEnvVar(fd int) string { return fmt.Sprintf("%s=%d", LockFDEnv, fd) }

// TakeLock takes over the pod lock stage0 handed to this process: it is
// marked close-on-exec, so that only the processes it is passed to on
// purpose hold it, removed from the environment, and returned as a file
// (nil if there is none).
func TakeLock() *os.File {
	defer os.Unsetenv(LockFDEnv)
	fd, err := strconv.Atoi(os.Getenv(LockFDEnv))
	if err != nil || fd < 0 {
		return nil
	}
	syscall.CloseOnExec(fd)
	return os.NewFile(uintptr(fd), "pod-lock")
}

// LeaveLock removes LockFDEnv from the environment, leaving the descriptor
// to whatever inherits it (systemd-nspawn, for the nspawn flavour).
func LeaveLock() { os.Unsetenv(LockFDEnv) }

// The run entrypoint's flags.
const (
	FlagDebug                          = "debug"
	FlagNet                            = "net"
	FlagMDSToken                       = "mds-token"
	FlagInteractive                    = "interactive"
	FlagLocalConfig                    = "local-config"
	FlagPrivateUsers                   = "private-users"
	FlagMutable                        = "mutable"
	FlagHostname                       = "hostname"
	FlagDisableCapabilitiesRestriction = "disable-capabilities-restriction"
	FlagDisablePaths                   = "disable-paths"
	FlagDisableSeccomp                 = "disable-seccomp"
	FlagDNSConfMode                    = "dns-conf-mode"
	// FlagIPC is orbit's own: "private" or "parent" (rkt's run --ipc),
	// given only to orbit's built-in flavours, and only when not "auto".
	FlagIPC = "ipc"
)

// RunFlagSince is the interface version that introduced a run flag (0 for
// a name that is none): a stage1 of an older version is not given it.
func RunFlagSince(flag string) int {
	switch flag {
	case FlagDebug, FlagNet, FlagMDSToken, FlagInteractive, FlagLocalConfig, FlagPrivateUsers, FlagMutable:
		return 1
	case FlagHostname:
		return 2
	case FlagDisableCapabilitiesRestriction, FlagDisablePaths, FlagDisableSeccomp:
		return 3
	case FlagDNSConfMode, FlagIPC:
		return 4
	}
	return 0
}

// RunOptions are the run entrypoint's flags; its one other argument is the
// pod UUID. An empty string or false means the flag is not given.
type RunOptions struct {
	Debug       bool
	Net         string // comma-separated networks
	MDSToken    string
	Interactive bool
	LocalConfig string
	// PrivateUsers, when given, runs the pod in a user namespace: a
	// UserRange ("SHIFT:COUNT", see ParseUserRange).
	PrivateUsers string
	// Mutable runs a sandbox, whose apps change while it runs.
	Mutable  bool
	Hostname string
	// DisableCapabilitiesRestriction, DisablePaths and DisableSeccomp
	// switch off parts of the apps' isolation (--insecure-options).
	DisableCapabilitiesRestriction bool
	DisablePaths                   bool
	DisableSeccomp                 bool
	// DNSConfMode is "resolv=MODE,hosts=MODE" (see design.md, "DNS").
	DNSConfMode string
	// IPC is the pod's IPC namespace: "private" (its own), "parent" (the
	// host's) or empty (the flavour's own choice). Only orbit's built-in
	// flavours are given it: stage0 refuses another mode for others.
	IPC string
}

// Args builds the run entrypoint's arguments for a stage1 of the given
// interface version: the flags that version knows, then the pod UUID.
func (o *RunOptions) Args(version int, uuid string) []string {
	var args []string
	add := func(name string, given bool, value string) {
		if !given || RunFlagSince(name) > version {
			return
		}
		if value == "" {
			args = append(args, "--"+name)
		} else {
			args = append(args, "--"+name+"="+value)
		}
	}
	add(FlagDebug, o.Debug, "")
	add(FlagNet, o.Net != "", o.Net)
	add(FlagMDSToken, o.MDSToken != "", o.MDSToken)
	add(FlagInteractive, o.Interactive, "")
	add(FlagLocalConfig, o.LocalConfig != "", o.LocalConfig)
	add(FlagPrivateUsers, o.PrivateUsers != "", o.PrivateUsers)
	add(FlagMutable, o.Mutable, "")
	add(FlagHostname, o.Hostname != "", o.Hostname)
	add(FlagDisableCapabilitiesRestriction, o.DisableCapabilitiesRestriction, "")
	add(FlagDisablePaths, o.DisablePaths, "")
	add(FlagDisableSeccomp, o.DisableSeccomp, "")
	add(FlagDNSConfMode, o.DNSConfMode != "", o.DNSConfMode)
	add(FlagIPC, o.IPC != "", o.IPC)
	return append(args, uuid)
}

// ParseRun reads the run entrypoint's arguments (without the program
// name): the flags of every interface version up to InterfaceVersion, then
// the pod UUID.
func ParseRun(args []string) (*RunOptions, string, error) {
	var o RunOptions
	fs := newFlagSet(Run)
	fs.BoolVar(&o.Debug, FlagDebug, false, "")
	fs.StringVar(&o.Net, FlagNet, "", "")
	fs.StringVar(&o.MDSToken, FlagMDSToken, "", "")
	fs.BoolVar(&o.Interactive, FlagInteractive, false, "")
	fs.StringVar(&o.LocalConfig, FlagLocalConfig, "", "")
	fs.StringVar(&o.PrivateUsers, FlagPrivateUsers, "", "")
	fs.BoolVar(&o.Mutable, FlagMutable, false, "")
	fs.StringVar(&o.Hostname, FlagHostname, "", "")
	fs.BoolVar(&o.DisableCapabilitiesRestriction, FlagDisableCapabilitiesRestriction, false, "")
	fs.BoolVar(&o.DisablePaths, FlagDisablePaths, false, "")
	fs.BoolVar(&o.DisableSeccomp, FlagDisableSeccomp, false, "")
	fs.StringVar(&o.DNSConfMode, FlagDNSConfMode, "", "")
	fs.StringVar(&o.IPC, FlagIPC, "", "")
	uuid, err := parseWithUUID(fs, args)
	if err != nil {
		return nil, "", err
	}
	if o.MDSToken != "" {
		o.MDSToken = strings.Clone(o.MDSToken)
		scrubArgv(FlagMDSToken)
	}
	return &o, uuid, nil
}

// EnterArgs are the enter entrypoint's arguments. It runs in the pod
// directory.
type EnterArgs struct {
	// Pid is the pod's PID as stage1 recorded it (PidFile).
	Pid int
	// App names the app to run the command beside.
	App string
	// Command is what to run; empty means DefaultEnterCommand.
	Command []string
}

// DefaultEnterCommand is what enter runs when it is given no command.
func DefaultEnterCommand() []string { return []string{"/bin/sh"} }

// Args builds the enter entrypoint's arguments.
func (e *EnterArgs) Args() []string {
	return append([]string{"--pid=" + strconv.Itoa(e.Pid), "--appname=" + e.App, "--"}, e.Command...)
}

// ParseEnter reads the enter entrypoint's arguments; the command is
// DefaultEnterCommand when none is given.
func ParseEnter(args []string) (*EnterArgs, error) {
	var e EnterArgs
	fs := newFlagSet(Enter)
	fs.IntVar(&e.Pid, "pid", 0, "")
	fs.StringVar(&e.App, "appname", "", "")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if e.Pid <= 0 {
		return nil, errors.New("--pid is required")
	}
	e.Command = fs.Args()
	if len(e.Command) == 0 {
		e.Command = DefaultEnterCommand()
	}
	return &e, nil
}

// GCArgs are the gc entrypoint's arguments. It runs in the pod directory.
type GCArgs struct {
	Debug bool
	UUID  string
}

// Args builds the gc entrypoint's arguments.
func (g *GCArgs) Args() []string {
	var args []string
	if g.Debug {
		args = append(args, "--debug")
	}
	return append(args, g.UUID)
}

// ParseGC reads the gc entrypoint's arguments.
func ParseGC(args []string) (*GCArgs, error) {
	var g GCArgs
	fs := newFlagSet(GC)
	fs.BoolVar(&g.Debug, "debug", false, "")
	uuid, err := parseWithUUID(fs, args)
	if err != nil {
		return nil, err
	}
	g.UUID = uuid
	return &g, nil
}

// StopArgs are the stop entrypoint's arguments. It runs in the pod
// directory.
type StopArgs struct {
	// Force asks for the pod's processes to be killed, not stopped in
	// order.
	Force bool
	UUID  string
}

// Args builds the stop entrypoint's arguments.
func (s *StopArgs) Args() []string {
	var args []string
	if s.Force {
		args = append(args, "--force")
	}
	return append(args, s.UUID)
}

// ParseStop reads the stop entrypoint's arguments.
func ParseStop(args []string) (*StopArgs, error) {
	var s StopArgs
	fs := newFlagSet(Stop)
	fs.BoolVar(&s.Force, "force", false, "")
	uuid, err := parseWithUUID(fs, args)
	if err != nil {
		return nil, err
	}
	s.UUID = uuid
	return &s, nil
}

// newFlagSet is a silent flag set: a parse error is returned, for the
// entrypoint to report in its one error line.
func newFlagSet(e Entrypoint) *flag.FlagSet {
	fs := flag.NewFlagSet(string(e), flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func parseWithUUID(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", err
	}
	if fs.NArg() != 1 {
		return "", fmt.Errorf("want exactly one pod UUID, got %q", fs.Args())
	}
	return fs.Arg(0), nil
}

// MetadataPort is the TCP port of the appc metadata service (rkt's),
// where apps reach it unless the service says otherwise.
const MetadataPort = 18112

// MetadataEndpoint is what the run entrypoint's FlagMDSToken carries: the
// token the metadata service gave the pod, and the service's TCP port. The
// flag's value is the token alone when the port is MetadataPort (as rkt
// passed it), else PORT:TOKEN (a token never holds a colon).
type MetadataEndpoint struct {
	Port  int
	Token string
}

// String is the flag's value.
func (m MetadataEndpoint) String() string {
	if m.Port == 0 || m.Port == MetadataPort {
		return m.Token
	}
	return strconv.Itoa(m.Port) + ":" + m.Token
}

// ParseMetadataEndpoint reads FlagMDSToken's value.
func ParseMetadataEndpoint(s string) (MetadataEndpoint, error) {
	m := MetadataEndpoint{Port: MetadataPort, Token: s}
	if p, tok, ok := strings.Cut(s, ":"); ok {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return m, fmt.Errorf("--%s: bad port %q", FlagMDSToken, p)
		}
		m.Port, m.Token = n, tok
	}
	if m.Token == "" || strings.ContainsAny(m.Token, "/?#% \t\n:") {
		return m, fmt.Errorf("--%s: not a metadata service token", FlagMDSToken)
	}
	return m, nil
}

// URL is the AC_METADATA_URL of the pod's apps, for a service they reach
// at host (an IP address).
func (m MetadataEndpoint) URL(host string) string {
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return "http://" + host + ":" + strconv.Itoa(m.Port) + "/" + m.Token
}

// MetadataURLEnv names the apps' environment variable that holds the
// metadata service's URL (appc).
const MetadataURLEnv = "AC_METADATA_URL"
