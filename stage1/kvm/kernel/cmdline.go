package kernel

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// TCGArgs returns the kernel command-line arguments a guest needs to boot
// quickly under QEMU's TCG emulation. The emulated TSC runs at the host's
// rate, but a guest calibrating it against the emulated PIT spends a long
// time doing so and may judge it unstable: tsc_early_khz gives it the
// host's frequency and tsc=reliable keeps it as the clocksource.
func TCGArgs() ([]string, error) {
	khz, err := HostTSCkHz()
	if err != nil {
		return nil, err
	}
	return []string{"tsc=reliable", "tsc_early_khz=" + strconv.Itoa(khz)}, nil
}

// TCGArgs is the package's TCGArgs for this kernel, and more: noapictimer,
// since under TCG the local APIC timer fails the kernel's verification
// after a fifth of a second of calibrating it and the kernel falls back on
// the PIT anyway; and, with the kernel's HZ known, lpj= (loops per jiffy:
// with a TSC-based delay loop, TSC cycles per timer tick), so that no CPU
// calibrates its delay loop, which under TCG takes a quarter of a second
// per secondary CPU on an idle host and several seconds on a loaded one.
func (k *Kernel) TCGArgs() ([]string, error) {
	khz, err := HostTSCkHz()
	if err != nil {
		return nil, err
	}
	return k.tcgArgs(khz), nil
}

func (k *Kernel) tcgArgs(khz int) []string {
	args := []string{"tsc=reliable", "tsc_early_khz=" + strconv.Itoa(khz), "noapictimer"}
	if k.HZ > 0 {
		args = append(args, "lpj="+strconv.Itoa(khz*1000/k.HZ))
	}
	return args
}

// HostTSCkHz is the host's TSC frequency in kHz: from sysfs where the
// kernel publishes it, else from /proc/cpuinfo's "cpu MHz", which is the
// TSC's rate on CPUs with a constant TSC.
func HostTSCkHz() (int, error) {
	return hostTSCkHz("/sys/devices/system/cpu/cpu0/tsc_freq_khz", "/proc/cpuinfo")
}

func hostTSCkHz(sysfs, cpuinfo string) (int, error) {
	if data, err := os.ReadFile(sysfs); err == nil {
		if khz, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && khz > 0 {
			return khz, nil
		}
	}
	f, err := os.Open(cpuinfo)
	if err != nil {
		return 0, fmt.Errorf("host TSC frequency: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(key) != "cpu MHz" {
			continue
		}
		mhz, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil || mhz <= 0 {
			break
		}
		return int(mhz*1000 + 0.5), nil
	}
	return 0, fmt.Errorf("host TSC frequency: %s has no cpu MHz: %w", cpuinfo, errdefs.ErrNotFound)
}
