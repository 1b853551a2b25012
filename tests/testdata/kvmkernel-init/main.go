// Command kvmkernel-init is the /init of the guests tests/kvmkernel_test.go
// boots: it loads the initramfs's modules as the supervisor does, checks
// the devices a pod's VM needs, reads a file from the 9p share and reports
// through QEMU's isa-debug-exit port (exit status (code<<1)|1).
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/stage1/kvm/kernel"
)

const (
	debugExitPort = 0xf4
	codeOK        = 42
	codeFailed    = 1
)

func main() {
	// A crash's report goes to the kernel's log, which the console shows
	// even when the guest stops at once (output written to the console
	// through its tty may still be buffered then).
	if err := unix.Mount("devtmpfs", "/dev", "devtmpfs", 0, ""); err == nil || err == unix.EBUSY {
		if kmsg, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0); err == nil {
			debug.SetCrashOutput(kmsg, debug.CrashOptions{})
			kmsg.Close()
		}
	}
	if err := check(); err != nil {
		fmt.Printf("kvmkernel: FAIL: %v\n", err)
		exit(codeFailed)
	}
	exit(codeOK)
}

func check() error {
	for _, m := range []struct{ src, dst, fstype string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"},
	} {
		if err := unix.Mount(m.src, m.dst, m.fstype, 0, ""); err != nil && err != unix.EBUSY {
			return fmt.Errorf("mounting %s: %v", m.dst, err)
		}
	}
	start := time.Now()
	if err := kernel.LoadModules(); err != nil {
		return err
	}
	loaded := time.Since(start)

	// The control port: a virtserialport named by the host. Ports are
	// announced by the host after the driver probes, so wait a little.
	var port string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		names, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, n := range names {
			if b, err := os.ReadFile(n); err == nil && strings.TrimSpace(string(b)) == "org.orbit.test" {
				port = filepath.Base(filepath.Dir(n))
			}
		}
		if port != "" {
			break
		}
	}
	if port == "" {
		return fmt.Errorf("no virtio-serial port named org.orbit.test in /sys/class/virtio-ports")
	}
	if _, err := os.Stat("/dev/" + port); err != nil {
		return fmt.Errorf("port device: %v", err)
	}
	// The console (hvc0) is the first port the host announces: with the
	// packaged kernel it exists only now, its driver a module loaded
	// above, and the kernel could not give init its standard streams.
	if con, err := os.OpenFile("/dev/console", os.O_RDWR, 0); err == nil {
		for fd := 0; fd < 3; fd++ {
			unix.Dup2(int(con.Fd()), fd)
		}
		con.Close()
	}

	if err := os.MkdirAll("/mnt/share", 0o755); err != nil {
		return err
	}
	if err := unix.Mount("share", "/mnt/share", "9p", 0, "trans=virtio,version=9p2000.L,msize=262144"); err != nil {
		return fmt.Errorf("mounting the 9p share: %v", err)
	}
	token, err := os.ReadFile("/mnt/share/token")
	if err != nil {
		return fmt.Errorf("reading the share: %v", err)
	}
	if err := os.WriteFile("/mnt/share/reply", token, 0o644); err != nil {
		return fmt.Errorf("writing the share: %v", err)
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	cpus, _ := os.ReadFile("/sys/devices/system/cpu/online")
	fmt.Printf("kvmkernel: ok %s release=%s cpus=%s port=%s modules=%s\n",
		strings.TrimSpace(string(token)), unix.ByteSliceToString(uts.Release[:]),
		strings.TrimSpace(string(cpus)), port, loaded.Round(time.Millisecond))
	return nil
}

// exit leaves the VM through isa-debug-exit; should that fail, the kernel
// panics when init exits, and QEMU (-no-reboot) stops with status 0.
func exit(code byte) {
	os.Stdout.Sync()
	if err := unix.Ioperm(debugExitPort, 4, 1); err != nil {
		fmt.Printf("kvmkernel: ioperm: %v\n", err)
		os.Exit(1)
	}
	outb(debugExitPort, code)
	time.Sleep(10 * time.Second)
	os.Exit(1)
}

// outb writes val to an I/O port (outb_amd64.s).
func outb(port uint16, val byte)
