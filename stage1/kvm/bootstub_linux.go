package kvm

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Throwaway until the kernel and initramfs packages land.

type kernelInfo struct {
	Path    string
	Kind    string
	Version string
	Modules []string
}

func findKernel(user string) (*kernelInfo, error) {
	if user != "" {
		return &kernelInfo{Path: user, Kind: "user"}, nil
	}
	const v = "6.1.0-57-amd64"
	mod := "/lib/modules/" + v + "/kernel/"
	var mods []string
	for _, m := range []string{"drivers/virtio/virtio_ring.ko", "drivers/virtio/virtio.ko", "drivers/virtio/virtio_mmio.ko", "drivers/char/virtio_console.ko", "fs/netfs/netfs.ko", "fs/fscache/fscache.ko", "net/9p/9pnet.ko", "net/9p/9pnet_virtio.ko", "fs/9p/9p.ko", "net/core/failover.ko", "drivers/net/net_failover.ko", "drivers/net/virtio_net.ko"} {
		mods = append(mods, mod+m)
	}
	return &kernelInfo{Path: "/boot/vmlinuz-" + v, Kind: "packaged", Version: v, Modules: mods}, nil
}

func buildInitramfs(dir string, init []byte, k *kernelInfo) (string, error) {
	var buf bytes.Buffer
	w := &cpioWriter{w: &buf}
	w.dir("modules")
	w.dir("dev")
	w.hdrDev("dev/console", 0o020600, 0, 5, 1)
	w.hdrDev("dev/null", 0o020666, 0, 1, 3)
	w.file("init", 0o755, init)
	var order []string
	for _, m := range k.Modules {
		data, err := os.ReadFile(m)
		if err != nil {
			return "", err
		}
		w.file("modules/"+filepath.Base(m), 0o644, data)
		order = append(order, filepath.Base(m))
	}
	w.file("modules/order", 0o644, []byte(strings.Join(order, "\n")+"\n"))
	w.trailer()
	path := filepath.Join(dir, "initramfs.cpio")
	return path, os.WriteFile(path, buf.Bytes(), 0o644)
}

type cpioWriter struct {
	w   io.Writer
	ino int
}

func (c *cpioWriter) hdr(name string, mode int, size int) { c.hdrDev(name, mode, size, 0, 0) }

func (c *cpioWriter) hdrDev(name string, mode int, size int, maj, min int) {
	c.ino++
	fmt.Fprintf(c.w, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", c.ino, mode, 0, 0, 1, 0, size, 0, 0, maj, min, len(name)+1, 0)
	io.WriteString(c.w, name+"\x00")
	c.pad(110 + len(name) + 1)
}

func (c *cpioWriter) pad(n int) {
	if r := n % 4; r != 0 {
		c.w.Write(make([]byte, 4-r))
	}
}

func (c *cpioWriter) dir(name string) { c.hdr(name, 0o040755, 0) }

func (c *cpioWriter) file(name string, perm int, data []byte) {
	c.hdr(name, 0o100000|perm, len(data))
	c.w.Write(data)
	c.pad(len(data))
}

func (c *cpioWriter) trailer() { c.hdr("TRAILER!!!", 0, 0) }
