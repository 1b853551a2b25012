package kernel

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// LoadModules loads the modules the initramfs lists in ModuleOrder, in
// order, with finit_module. It is the guest side of the packaged kernel's
// modules: the supervisor, as PID 1 in the VM, calls it first. Without the
// list (the small kernel) it does nothing; a module the kernel already has
// is not an error.
func LoadModules() error {
	return loadModules(ModuleOrder, func(f *os.File) error {
		return unix.FinitModule(int(f.Fd()), "", 0)
	})
}

func loadModules(list string, load func(*os.File) error) error {
	lf, err := os.Open(list)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("loading modules: %w", err)
	}
	defer lf.Close()
	sc := bufio.NewScanner(lf)
	for sc.Scan() {
		name := strings.TrimSpace(sc.Text())
		if name == "" {
			continue
		}
		p := name
		if !path.IsAbs(p) {
			p = path.Join(path.Dir(list), name)
		}
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("loading module: %w", err)
		}
		err = load(f)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("loading module %s: %w", name, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("loading modules: reading %s: %w", list, err)
	}
	return nil
}
