package supervisor

import (
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// loadModules loads the kernel modules the initramfs carries, in order
// (throwaway until the kernel package provides it).
func loadModules() {
	data, err := os.ReadFile("/modules/order")
	if err != nil {
		return
	}
	for _, m := range strings.Fields(string(data)) {
		f, err := os.Open("/modules/" + m)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			continue
		}
		if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && err != unix.EEXIST {
			fmt.Fprintf(os.Stderr, "loading %s: %v\n", m, err)
		}
		f.Close()
	}
}
