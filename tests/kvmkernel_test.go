package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orbit-containers/orbit/stage1/kvm/initramfs"
	"github.com/orbit-containers/orbit/stage1/kvm/kernel"
)

// The guest kernels of the kvm flavour, booted under QEMU's TCG emulation
// (this machine's KVM cannot boot stock guests) with an initramfs from
// initramfs.Build whose /init is testdata/kvmkernel-init: it loads the
// modules, finds a virtio-serial port, mounts a 9p share, writes back a
// token and leaves through isa-debug-exit with kvmkernelOK.

const (
	kvmkernelOK = 42
	// kvmkernelPort is the name of the virtio-serial port the init looks for.
	kvmkernelPort = "org.orbit.test"
)

// kvmkernelFind returns the kernel of the kind asked for, as orbit would
// find it: the small one beside the binary under test or in the build
// cache, the packaged one in /boot.
func kvmkernelFind(t testing.TB, kind kernel.Kind) *kernel.Kernel {
	t.Helper()
	f := kernel.FinderFor(binary)
	if kind == kernel.Packaged {
		f.SmallDirs = nil
	}
	k, err := f.Find("")
	switch kind {
	case kernel.Small:
		require(t, err == nil && k.Kind == kernel.Small, "the small guest kernel (make kvm-kernel) is needed")
	case kernel.Packaged:
		require(t, err == nil && k.Kind == kernel.Packaged, "a packaged kernel (Debian package linux-image-amd64) is needed: %v", err)
	}
	return k
}

// kvmkernelInit builds the test's /init, static.
func kvmkernelInit(t testing.TB) []byte {
	t.Helper()
	goTool := requireTool(t, "go", "golang (or Go in /usr/local/go)")
	out := filepath.Join(t.TempDir(), "init")
	cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./testdata/kvmkernel-init")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the guest init: %v\n%s", err, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// kvmkernelGuest is one booted guest's outcome.
type kvmkernelGuest struct {
	code    int    // the code the guest wrote to isa-debug-exit, or -1
	output  string // the guest's console
	reply   string // what the guest wrote back to the share
	elapsed time.Duration
}

// kvmkernelBoot boots k with initrd under TCG until the guest leaves, and
// returns what it did. token goes to the guest through the 9p share
// (none when empty).
func kvmkernelBoot(t testing.TB, k *kernel.Kernel, initrd, token string) kvmkernelGuest {
	t.Helper()
	qemu := requireTool(t, "qemu-system-x86_64", "qemu-system-x86")
	share := t.TempDir()
	if token != "" {
		writeFile(t, filepath.Join(share, "token"), token)
	}
	tcg, err := k.TCGArgs()
	if err != nil {
		t.Fatal(err)
	}
	acpi := "off"
	if k.ACPI {
		acpi = "on"
	}
	args := []string{
		"-M", "microvm,pit=on,pic=on,rtc=on,acpi=" + acpi,
		"-accel", "tcg", "-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-m", "256", "-smp", "2",
		"-kernel", k.Path, "-initrd", initrd,
		"-append", strings.Join(append([]string{"console=hvc0", "panic=-1", "quiet"}, tcg...), " "),
		"-device", "virtio-serial-device",
		"-chardev", "stdio,id=console,signal=off", "-device", "virtconsole,chardev=console",
		"-chardev", "null,id=control", "-device", "virtserialport,chardev=control,name=" + kvmkernelPort,
		"-fsdev", "local,id=share,path=" + share + ",security_model=none",
		"-device", "virtio-9p-device,fsdev=share,mount_tag=share",
		"-device", "virtio-rng-device",
		"-device", "isa-debug-exit,iobase=0xf4,iosize=4",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	g := kvmkernelGuest{code: -1, output: out.String(), elapsed: time.Since(start)}
	var exit *exec.ExitError
	// isa-debug-exit makes QEMU exit with (code<<1)|1.
	if errors.As(err, &exit) && exit.ExitCode()&1 == 1 {
		g.code = exit.ExitCode() >> 1
	} else if ctx.Err() != nil {
		t.Fatalf("the guest did not finish in time:\n%s", g.output)
	}
	if b, err := os.ReadFile(filepath.Join(share, "reply")); err == nil {
		g.reply = string(b)
	}
	return g
}

func TestKVMKernelBootsAndRunsInit(t *testing.T) {
	t.Parallel()
	init := kvmkernelInit(t)
	for _, kind := range []kernel.Kind{kernel.Small, kernel.Packaged} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			k := kvmkernelFind(t, kind)
			if kind == kernel.Small && len(k.Modules) != 0 {
				t.Fatalf("the small kernel comes with modules: %v", k.Modules)
			}
			if kind == kernel.Packaged && len(k.Modules) == 0 {
				t.Fatalf("the packaged kernel comes without modules")
			}
			initrd, err := initramfs.Cached(t.TempDir(), init, k)
			if err != nil {
				t.Fatal(err)
			}
			token := fmt.Sprintf("token-%s-%d", kind, time.Now().UnixNano())
			g := kvmkernelBoot(t, k, initrd, token)
			t.Logf("%s: boot to exit in %v", k.Describe(), g.elapsed.Round(time.Millisecond))
			if g.code != kvmkernelOK {
				t.Fatalf("guest exit code %d, want %d; console:\n%s", g.code, kvmkernelOK, g.output)
			}
			want := fmt.Sprintf("kvmkernel: ok %s release=%s cpus=0-1 port=vport", token, k.Version)
			if !strings.Contains(g.output, want) {
				t.Errorf("console lacks %q:\n%s", want, g.output)
			}
			if g.reply != token {
				t.Errorf("the guest wrote %q to the share, want %q", g.reply, token)
			}
		})
	}
}

// A guest whose init fails is seen as failing: the exit code carries it.
func TestKVMKernelReportsAFailingGuest(t *testing.T) {
	t.Parallel()
	k := kvmkernelFind(t, kernel.Small)
	initrd, err := initramfs.Cached(t.TempDir(), kvmkernelInit(t), k)
	if err != nil {
		t.Fatal(err)
	}
	// Without the share's token the init's check fails.
	g := kvmkernelBoot(t, k, initrd, "")
	if g.code != 1 || !strings.Contains(g.output, "kvmkernel: FAIL: reading the share") {
		t.Fatalf("guest exit code %d, want 1 with a FAIL line; console:\n%s", g.code, g.output)
	}
}
