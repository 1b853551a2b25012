// Package fly is the fly stage1 flavour: one app, run on the host in a
// mount namespace of its own and chrooted into its rootfs, with no other
// isolation. Its entrypoints are the orbit binary under the names
// fly/run, fly/enter, fly/gc and fly/stop.
package fly

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/stage1/cgroup"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/pod"
	"github.com/orbit-containers/orbit/stage2"
)

// Run is the run entrypoint: it starts the pod's one app, waits for it,
// records its exit status and exits with it.
func Run(args []string) int { return pod.Main("stage1 fly", args, run) }

// errFlyPrivateUsers: a chroot shares the host's user IDs.
var errFlyPrivateUsers = fmt.Errorf("the fly flavour runs apps as the host's users, in no user namespace; --%s needs the nspawn flavour", contract.FlagPrivateUsers)

func run(args []string) (int, error) {
	flags, uuid, err := contract.ParseRun(args)
	if err != nil {
		return 0, err
	}
	lock := contract.TakeLock()
	sockets := activation.Files(true)
	// The app dies with this process (DieWithParent): the kernel ties that
	// to the thread that starts the app.
	runtime.LockOSThread()
	if flags.PrivateUsers != "" {
		return 0, errFlyPrivateUsers
	}
	if flags.Net != "" && flags.Net != "host" {
		return 0, fmt.Errorf("the fly flavour runs apps in the host's network; --net=%s is not supported", flags.Net)
	}
	p, err := pod.Load(".", uuid)
	if err != nil {
		return 0, err
	}
	if len(p.Manifest.Apps) != 1 {
		return 0, fmt.Errorf("the fly flavour runs exactly one app; this pod has %d", len(p.Manifest.Apps))
	}
	ra := &p.Manifest.Apps[0]
	im, err := p.ImageManifest(ra.Name)
	if err != nil {
		return 0, err
	}
	app, err := appFor(p, ra, im, flags.DNSConfMode)
	if err != nil {
		return 0, err
	}
	if flags.MDSToken != "" {
		// The app shares the host's network: the service is on loopback.
		ep, err := contract.ParseMetadataEndpoint(flags.MDSToken)
		if err != nil {
			return 0, err
		}
		app.Env = stage2.SetEnv(app.Env, contract.MetadataURLEnv, ep.URL("127.0.0.1"))
	}
	// sd_notify: an app that reports readiness itself gets the service
	// manager's socket; otherwise this process reports the pod ready once
	// the app has started.
	notify := os.Getenv("NOTIFY_SOCKET")
	appNotifies := notify != "" && pod.SupportsNotify(ra, im)
	if appNotifies {
		app.Env = append(app.Env, "NOTIFY_SOCKET="+notify)
		if !strings.HasPrefix(notify, "@") { // an abstract socket needs no mount
			app.Mounts = append(app.Mounts, stage2.Mount{Source: notify, Target: notify, FSType: "bind", CreateFile: true})
		}
	}
	app.DieWithParent = true
	if lock != nil {
		// The app holds the pod lock too, as under rkt's fly where stage1
		// became the app: the pod is running while any process of it that
		// kept the descriptor lives, even if this process is killed.
		app.PassFiles = 1
	}
	if !pod.SocketActivated(ra, im) {
		sockets = nil // only an app whose ports ask for them gets them
	}
	cmd, err := stage2.CommandWithSockets(app, sockets)
	if err != nil {
		return 0, err
	}
	if lock != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, lock)
	}
	stdin, closeStdin := pod.Stdin(flags.Interactive)
	defer closeStdin()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2)
	defer signal.Stop(sigs)
	children := make(chan os.Signal, 1)
	signal.Notify(children, unix.SIGCHLD)
	defer signal.Stop(children)
	// Whatever the app leaves behind is this process's to reap and end
	// (see track_linux.go).
	if err := becomeSubreaper(); err != nil {
		return 0, err
	}
	start := cmd.Start
	tracking := makeTrackingGroup(p)
	if tracking != nil {
		start = func() error { return tracking.group.StartIn(cmd, cmd.Start) }
	}
	if err := start(); err != nil {
		return 0, fmt.Errorf("starting app %s: %w", ra.Name, err)
	}
	if err := p.WritePid(cmd.Process.Pid); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return 0, fmt.Errorf("recording the pod's pid: %w", err)
	}
	if notify != "" && !appNotifies {
		if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
			fmt.Fprintf(os.Stderr, "stage1 fly: notifying readiness: %v\n", err)
		}
	}
	stopRelay := pod.Relay(func(s os.Signal) {
		if s == unix.SIGCHLD {
			reapOrphans(cmd.Process.Pid)
		} else {
			cmd.Process.Signal(s)
		}
	}, sigs, children)
	code, err := pod.WaitStatus(cmd)
	stopRelay()
	if err != nil {
		return 0, fmt.Errorf("app %s: %w", ra.Name, err)
	}
	// The pod ends with its app, as a container ends with its PID 1:
	// nothing the app started outlives it.
	if err := killOrphans(); err != nil {
		return code, fmt.Errorf("app %s: ending what it left running: %w", ra.Name, err)
	}
	if tracking != nil {
		if err := tracking.remove(); err != nil {
			return code, fmt.Errorf("app %s: ending what it left running: %w", ra.Name, err)
		}
	}
	if err := p.WriteStatus(ra.Name, code); err != nil {
		return code, fmt.Errorf("recording the exit status of app %s: %w", ra.Name, err)
	}
	return code, nil
}

// GC is the gc entrypoint: it removes the pod's tracking cgroup, killing
// anything still in it. It runs in the pod directory.
func GC(args []string) int { return pod.Main("stage1 fly gc", args, gc) }

func gc(args []string) (int, error) {
	if _, err := contract.ParseGC(args); err != nil {
		return 0, err
	}
	dirs, err := trackedDirs(".")
	if err != nil {
		return 0, err
	}
	if len(dirs) == 0 {
		return 0, nil
	}
	l, err := cgroup.Detect()
	if err != nil {
		return 0, nil // no cgroups, nothing to remove
	}
	return 0, removeGroups(l, dirs)
}

// Stop is the stop entrypoint. It runs in the pod directory.
//
// Without --force it sends SIGTERM to the app; run ends whatever the app
// leaves behind when it exits. When the app is gone already (run was
// killed and only processes the app started are left), they get the
// SIGTERM. With --force, every process of the pod is killed, the app
// first, and stop waits until they are gone.
func Stop(args []string) int {
	return pod.Main("stage1 fly stop", args, func(args []string) (int, error) {
		a, err := contract.ParseStop(args)
		if err != nil {
			return 0, err
		}
		return 0, stop(".", a.Force)
	})
}

func stop(dir string, force bool) error {
	data, err := os.ReadFile(contract.PidFile(dir))
	if err != nil {
		return fmt.Errorf("the pod has no pid file: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return fmt.Errorf("bad pid file %q", data)
	}
	dirs, err := trackedDirs(dir)
	if err != nil {
		return err
	}
	sig := unix.SIGTERM
	if force {
		sig = unix.SIGKILL
	}
	if len(dirs) == 0 {
		// No tracking group: the app alone, as far as stop can tell; run
		// ends what it leaves behind.
		if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signalling %d: %w", pid, err)
		}
		return nil
	}
	procs, err := trackedProcs(dirs)
	if err != nil {
		return err
	}
	// The recorded pid is signalled only while it is still the pod's: a
	// PID reused by another process after the app ended is not.
	if slices.Contains(procs, pid) {
		if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("signalling %d: %w", pid, err)
		}
		if !force {
			return nil
		}
	}
	return signalTracked(dirs, sig, force)
}
