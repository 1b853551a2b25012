package initramfs

import (
	"fmt"
	"io"
)

// newcWriter writes the "newc" (SVR4, no checksum) cpio format the kernel
// unpacks into its rootfs: a 110-byte header of hexadecimal fields, the
// NUL-terminated name, the data, each padded to four bytes.
type newcWriter struct {
	w     io.Writer
	inode int
	err   error
}

type entry struct {
	name      string // without a leading slash
	mode      uint32 // type and permission bits, as in stat(2)
	rdevMajor int
	rdevMinor int
	data      []byte
}

const (
	modeDir  = 0o040000
	modeReg  = 0o100000
	modeChar = 0o020000
)

var zeros [4]byte

func (w *newcWriter) write(e entry) error {
	if w.err != nil {
		return w.err
	}
	w.inode++
	nlink := 1
	if e.mode&0o170000 == modeDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		w.inode, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, e.rdevMajor, e.rdevMinor, len(e.name)+1, 0)
	w.put([]byte(hdr))
	w.put([]byte(e.name + "\x00"))
	w.put(zeros[:pad(len(hdr)+len(e.name)+1)])
	w.put(e.data)
	w.put(zeros[:pad(len(e.data))])
	return w.err
}

func (w *newcWriter) close() error {
	w.inode = -1 // the trailer's inode is 0
	return w.write(entry{name: "TRAILER!!!"})
}

func (w *newcWriter) put(b []byte) {
	if w.err == nil && len(b) > 0 {
		_, w.err = w.w.Write(b)
	}
}

func pad(n int) int { return (4 - n%4) % 4 }
