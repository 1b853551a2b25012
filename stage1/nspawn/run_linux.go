// Package nspawn is the nspawn stage1 flavour, orbit's default: the pod is
// a systemd-nspawn container (its own PID, mount, UTS and IPC namespaces,
// and its own network namespace unless it runs in the host's network) whose PID 1 is orbit's pod supervisor, which starts
// every app through the stage2 launcher in a mount namespace and root of
// its own, with the app's isolators applied.
package nspawn

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/coreos/go-systemd/v22/activation"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/cgroup"
	"github.com/orbit-containers/orbit/stage1/cgroup/devicefilter"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/pod"
	"github.com/orbit-containers/orbit/stage2"
)

// missingNspawn is the error when the host lacks systemd-nspawn.
var errNoNspawn = errors.New("systemd-nspawn is not installed; on Debian install the package systemd-container")

// Run is the run entrypoint.
func Run(args []string) int { return pod.Main("stage1 nspawn", args, run) }

func run(args []string) (int, error) {
	flags, uuid, err := contract.ParseRun(args)
	if err != nil {
		return 0, err
	}
	// systemd-nspawn inherits the pod lock: if this process is killed, the
	// container (nspawn, the pod's ppid) goes on and the pod stays
	// "running" until it really ends. nspawn does not pass the descriptor
	// into the container.
	contract.LeaveLock()
	nspawn, err := exec.LookPath("systemd-nspawn")
	if err != nil {
		return 0, errNoNspawn
	}
	p, err := pod.Load(".", uuid)
	if err != nil {
		return 0, err
	}
	if flags.Mutable {
		if err := checkSandbox(p, flags); err != nil {
			return 0, err
		}
	} else if flags.Interactive && len(p.Manifest.Apps) != 1 {
		return 0, fmt.Errorf("--interactive needs a pod with one app; this one has %d", len(p.Manifest.Apps))
	}
	hostname := flags.Hostname
	if hostname == "" {
		hostname = "orbit-" + uuid
	}
	netns, err := setupNetwork(p, flags)
	if err != nil {
		return 0, err
	}
	if netns != "" {
		// Whatever happens from here on, the pod's networks are undone
		// once its last process is gone (and by gc, if this process is
		// killed first).
		defer teardownNetwork(p)
	}
	pl, err := planPod(p, flags, hostname)
	if err != nil {
		return 0, err
	}
	pl.netns = netns
	if pl.users, err = podUserRange(flags); err != nil {
		return 0, err
	}
	if flags.Mutable {
		if err := planSandbox(p, flags, pl); err != nil {
			return 0, err
		}
	}
	planJournal(pl)
	apps := make([]*stage2.App, len(pl.config.Apps))
	for i := range pl.config.Apps {
		apps[i] = &pl.config.Apps[i].App
	}
	pod.LowerOOMFloor(apps)
	group, err := makePodCgroup(p, pl)
	if err != nil {
		return 0, err
	}
	sockets := activation.Files(true)
	if flags.IPC == "parent" {
		// systemd-nspawn always makes the container an IPC namespace of its
		// own; the host's is handed in after the sockets, and the
		// supervisor moves the pod into it.
		ns, err := os.Open("/proc/self/ns/ipc")
		if err != nil {
			return 0, fmt.Errorf("opening the host's IPC namespace: %w", err)
		}
		defer ns.Close()
		sockets = append(sockets, ns)
		pl.config.HostIPC = true
	}
	if err := writeConfig(p, &pl.config); err != nil {
		return 0, err
	}
	if pl.users != nil {
		if err := chownPod(p, *pl.users); err != nil {
			return 0, err
		}
		if err := handOverCgroups(p, *pl.users); err != nil {
			return 0, err
		}
		idmapVolumes(pl)
	}

	tty := flags.Interactive && term.IsTerminal(int(os.Stdin.Fd()))
	cmd := startNspawn(nspawn, nspawnArgs(p, uuid, hostname, flags, pl, tty), sockets)
	// nspawn's own syscall filter is off: orbit filters each app itself,
	// and the supervisor needs the syscalls nspawn would deny.
	cmd.Env = append(append(os.Environ(), "SYSTEMD_SECCOMP=0"), cgroupEnv()...)
	stdin, closeStdin := pod.Stdin(flags.Interactive)
	defer closeStdin()
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, os.Stdout, os.Stderr
	if !tty {
		// Terminal signals (^C) reach only this process, which turns them
		// into an orderly stop; nspawn must not see them as well.
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Setpgid = true
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, notIgnored(stopSignals())...)
	defer signal.Stop(sigs)
	dropped := make(chan os.Signal, 1) // never read: the signals are dropped
	signal.Notify(dropped, ignoredSignals()...)
	defer signal.Stop(dropped)
	start := cmd.Start
	if pl.users != nil && netns != "" {
		start = inNetns(netns, start)
	}
	if group != nil {
		// nspawn (and so the container) starts inside the pod's cgroup;
		// this process stays where it was started, out of the pod's group,
		// which so holds no process of its own (cgroup v2 then lets its
		// controllers be enabled for the apps below it).
		start = func() error { return group.StartIn(cmd, cmd.Start) }
	}
	if err := start(); err != nil {
		return 0, fmt.Errorf("starting systemd-nspawn: %w", err)
	}
	if err := atomicfile.Replace(filepath.Join(p.Dir, nspawnPidFile), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return 0, fmt.Errorf("recording systemd-nspawn's pid: %w", err)
	}
	// The pod's pid (what enter is given) is the container's PID 1, which
	// nspawn starts through a helper process: it is recorded once it is
	// there, not guessed from nspawn's children while the helper lives. A
	// pod whose pid cannot be recorded could not be entered: it is stopped,
	// and run fails with the reason.
	pidErr := make(chan error, 1)
	go func() {
		err := recordPid(cmd.Process.Pid, p.WritePid)
		if err != nil {
			cmd.Process.Signal(unix.SIGTERM)
		}
		pidErr <- err
	}()
	stopRelay := pod.Relay(func(os.Signal) {
		// nspawn turns SIGTERM into --kill-signal for the supervisor: an
		// orderly stop, whatever the request was.
		cmd.Process.Signal(unix.SIGTERM)
	}, sigs)
	code, err := pod.WaitStatus(cmd)
	stopRelay()
	// nspawn ends after the container, unless it was killed: then this
	// process holds the pod lock until the pod's last process is gone.
	killed := true
	if cmd.ProcessState != nil {
		ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
		killed = ok && ws.Signaled()
	}
	waitPodGone(p, killed, sigs)
	if perr := <-pidErr; perr != nil && err == nil {
		return 0, perr
	}
	return code, err
}

func writeConfig(p *pod.Pod, cfg any) error {
	data, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	path := filepath.Join(p.Stage1Rootfs(), supervisorConfig)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// podCgroup is the pod's cgroup below the cgroup of the process that runs
// it (the systemd unit running orbit, say, so the unit's limits and its
// control over its processes still hold).
func podCgroup(uuid string) string { return "orbit/" + uuid }

// makePodCgroup makes the pod's cgroup, below this process's own in each
// hierarchy, and records it for gc; systemd-nspawn and the container are
// started in it, and the supervisor makes one group per app below. The
// group confines the pod's devices, so a pod never runs without it.
func makePodCgroup(p *pod.Pod, pl *plan) (*cgroup.Group, error) {
	limits := false
	for _, a := range pl.config.Apps {
		if a.Limits != (cgroup.Limits{}) {
			limits = true
		}
	}
	l, err := cgroup.Detect()
	if err == nil {
		l, err = l.Nested()
	}
	if err == nil {
		err = checkDelegated(l, pl)
	}
	var g *cgroup.Group
	if err == nil {
		g, err = confinedPodCgroup(l, p.UUID)
	}
	if err == nil {
		// Recorded before anything runs in it, so gc always finds it. On a
		// hybrid host systemd-nspawn mirrors the group into the named
		// systemd hierarchy; that copy is the pod's too.
		dirs := g.Dirs()
		for _, h := range l.V1 {
			if h.Name != "" {
				dirs = append(dirs, filepath.Join(h.Mountpoint, podCgroup(p.UUID)))
			}
		}
		err = atomicfile.Replace(contract.CgroupsFile(p.Dir), []byte(strings.Join(dirs, "\n")+"\n"), 0o644)
	}
	if err != nil {
		if g != nil {
			_ = l.Remove(podCgroup(p.UUID))
		}
		if limits {
			return nil, fmt.Errorf("the pod's apps have resource limits but its cgroup could not be made: %w", err)
		}
		return nil, fmt.Errorf("the pod's cgroup, which confines its devices, could not be made: %w", err)
	}
	pl.config.WritableCgroups = true
	return g, nil
}

// confinedPodCgroup makes the pod's cgroup with the device allow-list
// (cgroup.DefaultDevices): in the v1 devices hierarchy where the host has
// one, and as an eBPF device filter on the group's cgroup2 directory where
// there is a cgroup2 tree (on a hybrid host, both). Either suffices; a host
// with neither can not confine a pod's devices and runs no pod.
func confinedPodCgroup(l *cgroup.Layout, uuid string) (*cgroup.Group, error) {
	rules := cgroup.DefaultDevices()
	g, err := l.CreateConfined(podCgroup(uuid), cgroup.Limits{}, rules)
	if err != nil {
		return nil, err
	}
	if dir := g.UnifiedDir(); dir != "" {
		err = devicefilter.Attach(dir, rules)
		if err == nil || g.DevicesV1() {
			return g, nil
		}
	}
	if !g.DevicesV1() {
		if err == nil {
			err = fmt.Errorf("no devices controller and no cgroup2 tree: %w", errdefs.ErrNotFound)
		}
		return g, fmt.Errorf("confining the pod's devices: %w", err)
	}
	return g, nil
}

// systemBus reports whether the host runs systemd with a system bus and
// systemd-machined, so nspawn can register the pod with machined.
func systemBus() bool {
	if fi, err := os.Stat("/run/systemd/system"); err != nil || !fi.IsDir() {
		return false
	}
	if _, err := os.Stat("/run/dbus/system_bus_socket"); err != nil {
		return false
	}
	return machined()
}

func nspawnArgs(p *pod.Pod, uuid, hostname string, flags *contract.RunOptions, pl *plan, tty bool) []string {
	args := []string{
		"--quiet",
		"--keep-unit",
		"--directory=" + p.Stage1Rootfs(),
		"--machine=orbit-" + uuid,
		"--hostname=" + hostname,
		"--kill-signal=SIGTERM",
		"--link-journal=no",
		"--capability=all",
	}
	if !systemBus() {
		args = append(args, "--register=no")
	}
	if tty {
		args = append(args, "--console=interactive")
	} else {
		args = append(args, "--console=pipe")
	}
	if pl.notify {
		// nspawn tells the service manager the pod is ready when the
		// container says so (the supervisor, or an app that notifies).
		args = append(args, "--notify-ready=yes")
	}
	if pl.netns != "" && pl.users == nil {
		// (In a user namespace nspawn is started in it instead: inNetns.)
		args = append(args, "--network-namespace-path="+pl.netns)
	}
	args = append(args, userNSArgs(pl.users)...)
	for _, b := range pl.binds {
		args = append(args, b.flag())
	}
	args = append(args, "--", "/nspawn/supervisor")
	if flags.Debug {
		args = append(args, "--debug")
	}
	return append(args, supervisorConfig)
}

// nspawnPidFile records systemd-nspawn's PID in the pod directory, for stop.
const nspawnPidFile = "nspawn.pid"
