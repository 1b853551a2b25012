package supervisor

import (
	"bufio"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// settleAgain is how long after the apps started the supervisor settles a
// second time.
const settleAgain = 2 * time.Second

// settle trims what the supervisor keeps resident once every app has
// started and it only waits: the pod's PID 1 is idle for the pod's whole
// life, so what it needed to start the apps should not stay counted
// against the pod.
//
//   - The heap is collected and its free pages returned to the kernel.
//   - The page-table entries of its own read-only mappings (text and
//     read-only data of the binary) are dropped with MADV_DONTNEED. They
//     are clean pages of the binary's file, which stay in the page cache
//     (shared by every pod's supervisor): what the idle loop touches again
//     comes back with a minor fault, and the rest stops counting in the
//     supervisor's RSS. Writable mappings are left alone.
func settle(log *slog.Logger) {
	runtime.GC()
	debug.FreeOSMemory()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	var released uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		start, end, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		lo, err1 := strconv.ParseUint(start, 16, 64)
		hi, err2 := strconv.ParseUint(end, 16, 64)
		if err1 != nil || err2 != nil || hi <= lo {
			continue
		}
		// The raw call: these are the binary's own mappings, not memory
		// Go allocated, so there is no slice to hand unix.Madvise.
		// MADV_RANDOM first: what is faulted back in later is read
		// alone, not with the readahead around it.
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, uintptr(lo), uintptr(hi-lo), unix.MADV_RANDOM)
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, uintptr(lo), uintptr(hi-lo), unix.MADV_DONTNEED); errno != 0 {
			log.Debug("releasing the binary's pages", "err", errno)
			continue
		}
		released += hi - lo
	}
	// The page cache maps a fault back in a whole (large) folio at a time,
	// so a few touched functions would bring back most of the text. The
	// binary's cached pages that no process maps any more are dropped:
	// those the idle loop touches again come back a page at a time.
	if bf, err := os.Open(exe); err == nil {
		_ = unix.Fadvise(int(bf.Fd()), 0, 0, unix.FADV_DONTNEED)
		bf.Close()
	}
	log.Debug("settled", "released", released)
}
