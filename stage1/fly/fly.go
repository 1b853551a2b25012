// Package fly is the fly stage1 flavour: one app, run on the host in a
// mount namespace of its own and chrooted into its rootfs, with no other
// isolation. Its entrypoints are the orbit binary under the names
// fly/run, fly/enter, fly/gc and fly/stop.
package fly

import (
	"errors"
	"flag"
	"fmt"
	"github.com/coreos/go-systemd/v22/daemon"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/stage1/pod"
	"github.com/orbit-containers/orbit/stage2"
)

// Run is the run entrypoint: it starts the pod's one app, waits for it,
// records its exit status and exits with it.
func Run(args []string) int {
	code, err := run(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1 fly: %v\n", err)
		return 254
	}
	return code
}

func run(args []string) (int, error) {
	flags, uuid, err := pod.ParseRunFlags("fly run", args, os.Stderr)
	if err != nil {
		return 0, err
	}
	lock := pod.TakeLock()
	sockets := stage2.InheritedSockets()
	// The app dies with this process (DieWithParent): the kernel ties that
	// to the thread that starts the app.
	runtime.LockOSThread()
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
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if !flags.Interactive {
		// Without --interactive the app gets no terminal input, as in rkt.
		if devnull, err := os.Open(os.DevNull); err == nil {
			defer devnull.Close()
			cmd.Stdin = devnull
		}
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
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
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()
	code, err := pod.WaitStatus(cmd)
	close(done)
	if err != nil {
		return 0, fmt.Errorf("app %s: %w", ra.Name, err)
	}
	if err := p.WriteStatus(ra.Name, code); err != nil {
		return code, fmt.Errorf("recording the exit status of app %s: %w", ra.Name, err)
	}
	return code, nil
}

// GC is the gc entrypoint: fly makes nothing outside the pod directory.
func GC(args []string) int { return 0 }

// Stop is the stop entrypoint: SIGTERM to the app, or SIGKILL with --force.
func Stop(args []string) int {
	fs := flag.NewFlagSet("fly stop", flag.ContinueOnError)
	force := fs.Bool("force", false, "")
	if err := fs.Parse(args); err != nil {
		return 254
	}
	data, err := os.ReadFile("pid")
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1 fly: the pod has no pid file: %v\n", err)
		return 254
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		fmt.Fprintf(os.Stderr, "stage1 fly: bad pid file %q\n", data)
		return 254
	}
	sig := unix.SIGTERM
	if *force {
		sig = unix.SIGKILL
	}
	if err := unix.Kill(pid, sig); err != nil && !errors.Is(err, unix.ESRCH) {
		fmt.Fprintf(os.Stderr, "stage1 fly: signalling %d: %v\n", pid, err)
		return 254
	}
	return 0
}
