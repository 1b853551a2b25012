// Package initramfs builds the initramfs the kvm flavour boots its guests
// with: the supervisor as /init, the guest kernel's modules and their load
// order (read by kernel.LoadModules), and the directories the guest mounts
// its filesystems on. Cached keeps one per content in a directory, so each
// pod does not build its own.
package initramfs

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/orbit-containers/orbit/stage1/kvm/kernel"
)

// dirs are the directories the guest needs before it mounts anything, with
// their modes.
var dirs = []struct {
	name string
	mode uint32
}{
	{"dev", 0o755}, {"dev/pts", 0o755}, {"dev/shm", 0o1777}, {"proc", 0o555},
	{"sys", 0o555}, {"run", 0o755}, {"tmp", 0o1777}, {"mnt", 0o755},
	{"root", 0o700}, {"etc", 0o755}, {"lib", 0o755}, {"lib/modules", 0o755},
}

// Build writes a newc cpio archive to w: init as /init (mode 0755), the
// directories the guest needs, /dev/console and /dev/null, and k's modules (decompressed)
// in kernel.ModuleDir with their load order in kernel.ModuleOrder. The
// archive is the same for the same input: owners root, times zero.
func Build(w io.Writer, init []byte, k *kernel.Kernel) error {
	if len(init) == 0 {
		return fmt.Errorf("initramfs: empty init")
	}
	cw := &newcWriter{w: w}
	for _, d := range dirs {
		cw.write(entry{name: d.name, mode: modeDir | d.mode})
	}
	// The kernel opens /dev/console for init's standard streams before
	// devtmpfs is mounted; when that fails (the console's driver is a
	// module not loaded yet), Go's runtime opens /dev/null for them
	// instead, and gives up without it.
	cw.write(entry{name: "dev/console", mode: modeChar | 0o600, rdevMajor: 5, rdevMinor: 1})
	cw.write(entry{name: "dev/null", mode: modeChar | 0o666, rdevMajor: 1, rdevMinor: 3})
	cw.write(entry{name: "init", mode: modeReg | 0o755, data: init})
	if k != nil && len(k.Modules) > 0 {
		dir := strings.TrimPrefix(kernel.ModuleDir, "/")
		cw.write(entry{name: dir, mode: modeDir | 0o755})
		var order bytes.Buffer
		seen := map[string]bool{}
		for _, m := range k.Modules {
			name := kernel.ModuleName(m)
			if seen[name] {
				return fmt.Errorf("initramfs: two modules named %s", name)
			}
			seen[name] = true
			data, err := readModule(m)
			if err != nil {
				return err
			}
			cw.write(entry{name: path.Join(dir, name), mode: modeReg | 0o644, data: data})
			order.WriteString(name + "\n")
		}
		cw.write(entry{name: strings.TrimPrefix(kernel.ModuleOrder, "/"), mode: modeReg | 0o644, data: order.Bytes()})
	}
	if err := cw.close(); err != nil {
		return fmt.Errorf("initramfs: %w", err)
	}
	return nil
}

// readModule reads a module file, decompressed: the kernel's finit_module
// takes compressed modules only when built to, so the guest gets them plain.
func readModule(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("initramfs: module: %w", err)
	}
	defer f.Close()
	var r io.Reader = f
	switch {
	case strings.HasSuffix(p, ".ko.xz"):
		if r, err = xz.NewReader(f); err != nil {
			return nil, fmt.Errorf("initramfs: module %s: %w", p, err)
		}
	case strings.HasSuffix(p, ".ko.zst"):
		d, err := zstd.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("initramfs: module %s: %w", p, err)
		}
		defer d.Close()
		r = d
	case strings.HasSuffix(p, ".ko.gz"):
		g, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("initramfs: module %s: %w", p, err)
		}
		r = g
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("initramfs: module %s: %w", p, err)
	}
	return data, nil
}
