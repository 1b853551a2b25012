package supervisor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/kvm/kernel"
)

// guestRoot is where, in the initramfs, the shared stage1 rootfs is
// mounted before it becomes the root.
const guestRoot = "/newroot"

// portWait bounds the wait for the virtio-serial ports to appear.
const portWait = 10 * time.Second

// GuestMain is PID 1 of a kvm pod's VM (started by the kernel as /init
// from the initramfs): it mounts the shared stage1 rootfs and the other
// shares, makes the rootfs the root, runs the pod with Run, reports the
// pod's exit status on the control port, and powers the VM off. It never
// returns: a VM whose init exits panics.
func GuestMain() {
	code := contract.ExitFailure
	ctl, err := guestMain(&code)
	if err != nil {
		fmt.Fprintf(os.Stderr, "orbit-supervisor (guest): %v\n", err)
	}
	if ctl != nil {
		fmt.Fprintf(ctl, "%s%d\n", GuestExit, code)
		ctl.Close()
	}
	guestPowerOff()
}

// guestPowerOff resets the VM, which QEMU (started with -no-reboot) takes
// as the end: with reboot=t on the kernel command line the reset is an
// immediate triple fault, so neither ACPI nor a keyboard controller is
// needed.
func guestPowerOff() {
	unix.Sync()
	for {
		_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
		time.Sleep(time.Second)
	}
}

func guestMain(code *int) (*os.File, error) {
	if err := guestEarlyMounts(); err != nil {
		return nil, err
	}
	guestStdio()
	if err := kernel.LoadModules(); err != nil {
		return nil, err
	}
	ports, err := guestPorts([]string{GuestPortControl, GuestPortStdout, GuestPortStderr, GuestPortStdin, GuestPortEnter})
	if err != nil {
		return nil, err
	}
	ctl := ports[GuestPortControl]
	if ctl == nil {
		return nil, fmt.Errorf("no control port: %w", errdefs.ErrNotFound)
	}
	if guestProbe() {
		_, err := fmt.Fprintln(ctl, GuestProbeOK)
		*code = 0
		return ctl, err
	}
	// The apps' output, and the supervisor's own diagnostics, go to the
	// host's ports from here on.
	if f := ports[GuestPortStdout]; f != nil {
		_ = unix.Dup3(int(f.Fd()), 1, 0)
	}
	if f := ports[GuestPortStderr]; f != nil {
		_ = unix.Dup3(int(f.Fd()), 2, 0)
	}
	if f := ports[GuestPortStdin]; f != nil {
		_ = unix.Dup3(int(f.Fd()), 0, 0)
	} else if f, err := os.Open("/dev/null"); err == nil {
		_ = unix.Dup3(int(f.Fd()), 0, 0)
		f.Close()
	}
	gc, err := guestEnterRoot()
	if err != nil {
		return ctl, err
	}
	if err := unix.Sethostname([]byte(gc.Hostname)); err != nil {
		return ctl, fmt.Errorf("setting the host name: %w", err)
	}
	if err := guestNetwork(gc.Network); err != nil {
		return ctl, err
	}
	cfg, err := readConfig(gc.SupervisorConfig)
	if err != nil {
		return ctl, err
	}
	level := slog.LevelWarn
	if gc.Debug {
		level = slog.LevelDebug
	}
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("component", "supervisor")
	cfg.Stdout, cfg.Stderr = os.Stdout, os.Stderr
	if f := ports[GuestPortEnter]; f != nil {
		cfg.GuestEnter = f
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go guestControl(ctl, cancel)
	c, err := Run(ctx, cfg)
	if err != nil {
		return ctl, err
	}
	*code = c
	return ctl, nil
}

// guestControl reads the host's requests: a stop ends ctx, which stops
// the pod in order; a kill also kills every process of the pod.
func guestControl(ctl *os.File, stop func()) {
	sc := bufio.NewScanner(ctl)
	sc.Buffer(make([]byte, GuestMaxLine), GuestMaxLine)
	for sc.Scan() {
		switch sc.Text() {
		case GuestStop:
			stop()
		case GuestKill:
			stop()
			// Every process but this one, PID 1: the apps, their
			// handlers and whatever they started.
			_ = unix.Kill(-1, unix.SIGKILL)
		}
	}
}

// guestProbe reports whether the kernel command line asks for a probe.
func guestProbe() bool {
	data, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(data)) {
		if f == GuestProbeArg {
			return true
		}
	}
	return false
}

// guestStdio opens /dev/null on whichever of descriptors 0, 1 and 2 the
// kernel left closed (it had no console to give init yet), so that no file
// opened later takes their place.
func guestStdio() {
	for fd := 0; fd <= 2; fd++ {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			continue
		}
		null, err := unix.Open("/dev/null", unix.O_RDWR, 0)
		if err != nil {
			return
		}
		if null != fd {
			_ = unix.Dup3(null, fd, 0)
			_ = unix.Close(null)
		}
	}
}

// guestEarlyMounts gives the initramfs the kernel's file systems.
func guestEarlyMounts() error {
	for _, m := range []struct{ fstype, target string }{
		{"devtmpfs", "/dev"}, {"proc", "/proc"}, {"sysfs", "/sys"},
	} {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.fstype, m.target, m.fstype, unix.MS_NOSUID, ""); err != nil && !errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("mounting %s on %s: %w", m.fstype, m.target, err)
		}
	}
	return nil
}

// guestPorts opens the virtio-serial ports by name (the kernel lists each
// port's name in sysfs; there is no udev to make /dev/virtio-ports links).
// Ports appear shortly after boot: it waits until the control port is
// there, and returns the others it found by then.
func guestPorts(names []string) (map[string]*os.File, error) {
	deadline := time.Now().Add(portWait)
	for {
		found := map[string]string{}
		dirs, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, d := range dirs {
			name, err := os.ReadFile(d)
			if err != nil {
				continue
			}
			found[strings.TrimSpace(string(name))] = "/dev/" + filepath.Base(filepath.Dir(d))
		}
		if found[GuestPortControl] != "" || time.Now().After(deadline) {
			ports := map[string]*os.File{}
			for _, n := range names {
				if dev := found[n]; dev != "" {
					f, err := os.OpenFile(dev, os.O_RDWR, 0)
					if err != nil {
						return nil, fmt.Errorf("opening port %s: %w", n, err)
					}
					ports[n] = f
				}
			}
			return ports, nil
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// guestEnterRoot mounts the shared stage1 rootfs and the other shares,
// moves the kernel's file systems into it, and makes it the root.
func guestEnterRoot() (*GuestConfig, error) {
	if err := os.MkdirAll(guestRoot, 0o755); err != nil {
		return nil, err
	}
	if err := mount9p(GuestRootTag, guestRoot, false); err != nil {
		return nil, err
	}
	gc, err := readGuestConfig(filepath.Join(guestRoot, GuestConfigPath))
	if err != nil {
		return nil, err
	}
	for _, s := range gc.Shares {
		target, err := guestTarget(s.Target)
		if err != nil {
			return nil, err
		}
		if err := os.MkdirAll(target, 0o755); err != nil {
			return nil, err
		}
		if err := mount9p(s.Tag, target, s.ReadOnly); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		target := filepath.Join(guestRoot, d)
		if err := os.MkdirAll(target, 0o755); err != nil {
			return nil, err
		}
		if err := unix.Mount(d, target, "", unix.MS_MOVE, ""); err != nil {
			return nil, fmt.Errorf("moving %s into the root: %w", d, err)
		}
	}
	cg := filepath.Join(guestRoot, "/sys/fs/cgroup")
	if err := unix.Mount("cgroup2", cg, "cgroup2", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return nil, fmt.Errorf("mounting cgroup2: %w", err)
	}
	for _, d := range []string{"/tmp", "/run"} {
		target := filepath.Join(guestRoot, d)
		if err := os.MkdirAll(target, 0o755); err == nil {
			_ = unix.Mount("tmpfs", target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1777")
		}
	}
	// The initramfs (the kernel's rootfs) cannot be pivoted away from;
	// the shared root is moved over it and entered, as switch_root does.
	// The apps' launcher can pivot from there: the root it sees has a
	// parent mount.
	if err := unix.Chdir(guestRoot); err != nil {
		return nil, err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return nil, fmt.Errorf("moving the root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return nil, err
	}
	return gc, unix.Chdir("/")
}

// guestTarget is a share's mount point below guestRoot; the host wrote
// the target, but it is checked all the same.
func guestTarget(t string) (string, error) {
	clean := filepath.Clean("/" + t)
	if clean == "/" || clean != t {
		return "", fmt.Errorf("share target %q: %w", t, errdefs.ErrInvalid)
	}
	return filepath.Join(guestRoot, clean), nil
}

// mount9p mounts a 9p share uncached, so the host sees what the apps write
// (their exit statuses) at once and the guest sees changes made on the
// host. The root share is not mounted with cache=mmap either: the guest's
// page cache of the apps' programs then counts in their memory cgroup,
// and an app at its memory limit thrashes on reclaiming and faulting back
// its own code instead of being OOM-killed.
func mount9p(tag, target string, readOnly bool) error {
	var flags uintptr = unix.MS_NOSUID
	if readOnly {
		flags |= unix.MS_RDONLY
	}
	opts := "trans=virtio,version=9p2000.L,msize=" + strconv.Itoa(512<<10) + ",access=client"
	if err := unix.Mount(tag, target, "9p", flags, opts); err != nil {
		return fmt.Errorf("mounting the 9p share %s on %s: %w", tag, target, err)
	}
	return nil
}

func readGuestConfig(name string) (*GuestConfig, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var gc GuestConfig
	dec := json.NewDecoder(io.LimitReader(f, maxConfigSize))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&gc); err != nil {
		return nil, fmt.Errorf("guest config %s: %w: %w", name, err, errdefs.ErrInvalid)
	}
	return &gc, nil
}
