package kvm

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/supervisor"
)

// The accelerators.
const (
	accelAuto = "auto"
	accelKVM  = "kvm"
	accelTCG  = "tcg"
)

// probeTimeout bounds a probe boot under KVM.
const probeTimeout = 10 * time.Second

// chooseAccel picks the accelerator: kvm or tcg as asked, or, for auto,
// KVM when /dev/kvm is there and a probe boot of this kernel under it
// works (the result is cached per kernel and initramfs), else TCG with a
// one-line warning.
func chooseAccel(qemu string, b *boot, want string) (string, error) {
	switch want {
	case accelKVM, accelTCG:
		return want, nil
	case "", accelAuto:
	default:
		return "", fmt.Errorf("accelerator %q: want auto, kvm or tcg: %w", want, errdefs.ErrInvalid)
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "orbit: warning: KVM is not usable here (%v); the pod's VM runs under TCG emulation, which is slower\n", err)
		return accelTCG, nil
	}
	f.Close()
	key, err := probeKey(b)
	if err != nil {
		return "", err
	}
	cached := filepath.Join(b.cacheDir, AccelCachePrefix+key)
	if data, err := os.ReadFile(cached); err == nil {
		// Its time is its last use, which the cache's gc goes by.
		now := time.Now()
		_ = os.Chtimes(cached, now, now)
		got := strings.TrimSpace(string(data))
		if got == accelKVM {
			return accelKVM, nil
		}
		fmt.Fprintln(os.Stderr, "orbit: warning: this kernel does not boot under this host's KVM; the pod's VM runs under TCG emulation, which is slower")
		return accelTCG, nil
	}
	got := accelTCG
	if probe(qemu, b) {
		got = accelKVM
	} else {
		fmt.Fprintln(os.Stderr, "orbit: warning: this kernel does not boot under this host's KVM; the pod's VM runs under TCG emulation, which is slower")
	}
	_ = atomicfile.Write(cached, []byte(got+"\n"), 0o644)
	return got, nil
}

// AccelCachePrefix starts the names of the probe results in the flavour's
// cache directory.
const AccelCachePrefix = "accel-"

// probeKey names a kernel and initramfs: the kernel's path, size and time,
// and the initramfs's name in the cache (a hash of its content; its time
// is its last use).
func probeKey(b *boot) (string, error) {
	h := sha256.New()
	fi, err := os.Stat(b.kernel)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "%s %d %d\n%s\n", b.kernel, fi.Size(), fi.ModTime().UnixNano(), b.cacheKey)
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// probe boots the guest under KVM in probe mode and reports whether it
// said so on its control port in time.
func probe(qemu string, b *boot) bool {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	host, guest := os.NewFile(uintptr(fds[0]), "probe"), os.NewFile(uintptr(fds[1]), "probe-guest")
	defer host.Close()
	args := []string{
		"-M", "microvm,pit=on,pic=on,rtc=on,isa-serial=off,acpi=" + onOff(b.acpi),
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-accel", accelKVM, "-cpu", cpuModel(accelKVM), "-m", "256M",
		"-kernel", b.kernel, "-initrd", b.initrd, "-append", b.cmdline(true, false),
		"-device", "virtio-serial-device",
		"-chardev", "socket,id=ctl,fd=3", "-device", "virtserialport,chardev=ctl,name=" + supervisor.GuestPortControl,
	}
	cmd := exec.Command(qemu, args...)
	cmd.ExtraFiles = []*os.File{guest}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		guest.Close()
		return false
	}
	guest.Close()
	ok := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(host)
		sc.Buffer(make([]byte, supervisor.GuestMaxLine), supervisor.GuestMaxLine)
		for sc.Scan() {
			if sc.Text() == supervisor.GuestProbeOK {
				ok <- true
				return
			}
		}
		ok <- false
	}()
	var res bool
	select {
	case res = <-ok:
	case <-time.After(probeTimeout):
	}
	cmd.Process.Kill()
	cmd.Wait()
	return res
}
