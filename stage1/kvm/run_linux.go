// Package kvm is the kvm stage1 flavour: each pod is a QEMU micro-VM
// booted straight into a kernel and an initramfs whose /init is orbit's pod
// supervisor (in its guest mode), which mounts the pod's stage1 rootfs,
// shared over virtio-9p, as its root and runs the apps there exactly as
// in the nspawn flavour. Output and control travel over virtio-serial
// ports. See Documentation/running-kvm.md.
package kvm

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/nspawn"
	"github.com/orbit-containers/orbit/stage1/pod"
	"github.com/orbit-containers/orbit/stage1/supervisor"
)

// qemuBinary is the QEMU system emulator the flavour runs.
const qemuBinary = contract.QEMUBinary

var errNoQEMU = fmt.Errorf("QEMU is not installed; on Debian install the package %s: %w", contract.QEMUPackage, errdefs.ErrNotFound)

// forceSignal, sent to the run entrypoint (by the stop entrypoint's
// --force), kills the pod's processes at once; forceGrace later, the VM is
// killed if it has not ended.
const (
	forceSignal = unix.SIGUSR1
	forceGrace  = 10 * time.Second
)

// Files the flavour keeps in the pod directory.
const (
	runPidFile  = "kvm-run.pid"
	qemuPidFile = "kvm-qemu.pid"
	consoleLog  = "kvm-console.log"
	// initrdFile is the pod's own link to the cached initramfs it boots.
	initrdFile = "kvm-initrd.cpio"
)

// Run is the run entrypoint.
func Run(args []string) int { return pod.Main("stage1 kvm", args, run) }

func run(args []string) (int, error) {
	flags, uuid, err := contract.ParseRun(args)
	if err != nil {
		return 0, err
	}
	// This process holds the pod lock until the VM is gone; QEMU does not
	// inherit it, and dies with this process.
	lock := contract.TakeLock()
	defer runtime.KeepAlive(lock)
	// From the start: a stop that arrives while the VM is being prepared
	// is passed on once it runs.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, forceSignal)
	defer signal.Stop(sigs)
	qemu, err := exec.LookPath(qemuBinary)
	if err != nil {
		return 0, errNoQEMU
	}
	p, err := pod.Load(".", uuid)
	if err != nil {
		return 0, err
	}
	if err := checkFlags(p, flags); err != nil {
		return 0, err
	}
	hostname := flags.Hostname
	if hostname == "" {
		hostname = "orbit-" + uuid
	}
	netns, nic, err := setupNetwork(p, flags)
	if err != nil {
		return 0, err
	}
	if netns != "" {
		defer teardownNetwork(p)
	}
	// Readiness is not relayed out of a VM.
	os.Unsetenv("NOTIFY_SOCKET")
	cfg, binds, err := nspawn.PlanGuest(p, flags, hostname)
	if err != nil {
		return 0, err
	}
	cfg.WritableCgroups = false // the guest's own cgroup tree
	shares, err := planShares(p, binds)
	if err != nil {
		return 0, err
	}
	gc := supervisor.GuestConfig{Shares: guestShares(shares), Hostname: hostname, SupervisorConfig: nspawn.SupervisorConfig, Debug: flags.Debug}
	if nic != nil {
		gc.Network = &nic.guest
	}
	if err := writeJSON(p, nspawn.SupervisorConfig, cfg); err != nil {
		return 0, err
	}
	if err := writeJSON(p, supervisor.GuestConfigPath, &gc); err != nil {
		return 0, err
	}
	boot, err := prepareBoot(p)
	if err != nil {
		return 0, err
	}
	accel, err := chooseAccel(qemu, boot, os.Getenv(contract.KVMAccelEnv))
	if err != nil {
		return 0, err
	}
	if accel == accelTCG {
		// The kernel's own: no timer or delay-loop calibration either.
		if boot.tcgArgs, err = boot.kern.TCGArgs(); err != nil {
			return 0, err
		}
	}
	if flags.Debug {
		fmt.Fprintf(os.Stderr, "stage1 kvm: booting the %s under %s\n", boot.describe, accel)
	}
	// What boots, for orbit status.
	rec := contract.KVMBoot{
		KernelKind: string(boot.kern.Kind), KernelVersion: boot.kern.Version, KernelPath: boot.kern.Path,
		Modules: len(boot.kern.Modules), Accel: accel,
	}
	if data, err := json.Marshal(&rec); err != nil {
		return 0, err
	} else if err := atomicfile.Write(contract.KVMBootFile(p.Dir), data, 0o644); err != nil {
		return 0, err
	}
	if err := atomicfile.Write(filepath.Join(p.Dir, runPidFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return 0, err
	}
	vm := &vm{
		qemu: qemu, boot: boot, accel: accel, pod: p, shares: shares,
		size: sizeOf(cfg), interactive: flags.Interactive, debug: flags.Debug,
		nic: nic, sigs: sigs,
	}
	return vm.run()
}

// checkFlags refuses what a kvm pod cannot be.
func checkFlags(p *pod.Pod, flags *contract.RunOptions) error {
	if flags.Mutable {
		return fmt.Errorf("a kvm pod cannot be a sandbox (mutable pod); use the nspawn flavour: %w", errdefs.ErrInvalid)
	}
	for _, n := range strings.Split(flags.Net, ",") {
		if n == "host" {
			return fmt.Errorf("a kvm pod cannot share the host's network: a VM has its own kernel and network stack: %w", errdefs.ErrInvalid)
		}
	}
	if flags.Interactive && len(p.Manifest.Apps) != 1 {
		return fmt.Errorf("--interactive needs a pod with one app; this one has %d: %w", len(p.Manifest.Apps), errdefs.ErrInvalid)
	}
	return nil
}

func writeJSON(p *pod.Pod, inRoot string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	path := contract.InStage1(p.Dir, inRoot)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.Write(path, data, 0o644)
}

// planShares turns the host paths the pod needs into 9p shares: a
// directory is shared as it is, a file (the host's resolv.conf) is copied
// into the stage1 rootfs, since 9p shares directories only.
func planShares(p *pod.Pod, binds []nspawn.Bind) ([]share, error) {
	var shares []share
	for _, b := range binds {
		fi, err := os.Stat(b.Source)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b.Source, err)
		}
		if !fi.IsDir() {
			if !fi.Mode().IsRegular() {
				return nil, fmt.Errorf("%s is neither a directory nor a file; a kvm pod cannot share it: %w", b.Source, errdefs.ErrInvalid)
			}
			data, err := os.ReadFile(b.Source)
			if err != nil {
				return nil, err
			}
			dst := contract.InStage1(p.Dir, b.Target)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return nil, err
			}
			if err := atomicfile.Write(dst, data, 0o644); err != nil {
				return nil, err
			}
			continue
		}
		shares = append(shares, share{
			GuestShare: supervisor.GuestShare{Tag: "orbit-share" + strconv.Itoa(len(shares)), Target: b.Target, ReadOnly: b.ReadOnly},
			host:       b.Source,
		})
	}
	return shares, nil
}

// vm is one run of a pod's VM.
type vm struct {
	qemu        string
	boot        *boot
	accel       string
	pod         *pod.Pod
	shares      []share
	size        vmSize
	interactive bool
	debug       bool
	nic         *nic
	sigs        chan os.Signal
}

// run starts QEMU, passes the apps' output through, turns signals into an
// orderly stop, and returns the pod's exit status as the guest reported it.
func (v *vm) run() (int, error) {
	ports := []string{supervisor.GuestPortControl, supervisor.GuestPortStdout, supervisor.GuestPortStderr, supervisor.GuestPortEnter}
	if v.interactive {
		ports = append(ports, supervisor.GuestPortStdin)
	}
	host := map[string]*os.File{}
	var guest []*os.File
	defer func() {
		for _, f := range host {
			f.Close()
		}
	}()
	for _, name := range ports {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return 0, err
		}
		host[name] = os.NewFile(uintptr(fds[0]), name)
		guest = append(guest, os.NewFile(uintptr(fds[1]), name+"-guest"))
	}
	cmd := exec.Command(v.qemu, v.args(v.boot.cmdline(false, v.debug), ports)...)
	cmd.ExtraFiles = guest
	cmd.Stdin, cmd.Stdout = nil, nil
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if v.nic != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, v.nic.tap)
	}
	if err := cmd.Start(); err != nil {
		for _, f := range guest {
			f.Close()
		}
		return 0, fmt.Errorf("starting QEMU: %w", err)
	}
	for _, f := range guest {
		f.Close()
	}
	if v.nic != nil {
		v.nic.tap.Close()
	}
	if err := atomicfile.Write(filepath.Join(v.pod.Dir, qemuPidFile), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return 0, err
	}
	if err := v.pod.WritePid(cmd.Process.Pid); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return 0, err
	}
	var copies sync.WaitGroup
	for name, dst := range map[string]io.Writer{supervisor.GuestPortStdout: os.Stdout, supervisor.GuestPortStderr: os.Stderr} {
		src := host[name]
		copies.Add(1)
		go func() {
			defer copies.Done()
			io.Copy(dst, src)
		}()
	}
	if in := host[supervisor.GuestPortStdin]; in != nil {
		go func() {
			io.Copy(in, os.Stdin)
			unix.Shutdown(int(in.Fd()), unix.SHUT_WR)
		}()
	}
	broker, err := listenEnter(host[supervisor.GuestPortEnter])
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return 0, err
	}
	defer broker.close()
	ctl := host[supervisor.GuestPortControl]
	var ctlMu sync.Mutex
	var killTimer *time.Timer
	stopRelay := pod.Relay(func(sig os.Signal) {
		ctlMu.Lock()
		defer ctlMu.Unlock()
		if sig != forceSignal {
			fmt.Fprintln(ctl, supervisor.GuestStop)
			return
		}
		fmt.Fprintln(ctl, supervisor.GuestKill)
		// A guest that does not end promptly is ended with its VM.
		if killTimer == nil {
			killTimer = time.AfterFunc(forceGrace, func() { cmd.Process.Kill() })
		}
	}, v.sigs)
	exit := make(chan int, 1)
	go func() { exit <- readExit(ctl) }()
	werr := cmd.Wait()
	stopRelay()
	if killTimer != nil {
		killTimer.Stop()
	}
	copies.Wait()
	code := <-exit
	if code >= 0 {
		return code, nil
	}
	if werr != nil {
		return 0, fmt.Errorf("the pod's VM failed (%v) before the pod ended; its console is in %s", werr, filepath.Join(v.pod.Dir, consoleLog))
	}
	return 0, fmt.Errorf("the pod's VM ended without the pod's exit status; its console is in %s", filepath.Join(v.pod.Dir, consoleLog))
}

// readExit reads the control port until the guest reports the pod's exit
// status, and returns it (-1 when it does not). What the guest says is
// bounded: one short line, a status from 0 to 255.
func readExit(ctl io.Reader) int {
	sc := bufio.NewScanner(ctl)
	sc.Buffer(make([]byte, supervisor.GuestMaxLine), supervisor.GuestMaxLine)
	code := -1
	for sc.Scan() {
		s, ok := strings.CutPrefix(sc.Text(), supervisor.GuestExit)
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 255 && code < 0 {
			code = n
		}
	}
	// The rest (if the scanner gave up on a long line) is drained so the
	// guest never blocks on it.
	io.Copy(io.Discard, ctl)
	return code
}

// share is a host directory shared with the guest.
type share struct {
	supervisor.GuestShare
	host string
}

func guestShares(s []share) []supervisor.GuestShare {
	out := make([]supervisor.GuestShare, len(s))
	for i := range s {
		out[i] = s[i].GuestShare
	}
	return out
}
