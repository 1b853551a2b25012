package supervisor

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"sync"
)

// maxLine is the longest line copied whole; a longer one is cut into
// pieces of this size, each prefixed.
const maxLine = 64 * 1024

// lineChunk is the size of each line copier's read buffer; maxLine must
// be a multiple of it, so that a long line is cut at maxLine exactly.
const lineChunk = 4 * 1024

// output serialises writes from all apps so that no two lines mix.
type output struct {
	mu sync.Mutex
}

// write writes b to w as one call, alone.
func (o *output) write(w io.Writer, b []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, _ = w.Write(b)
}

// prefix is the multi-app line prefix: "name[pid]: ".
func prefix(name string, pid int) string {
	return name + "[" + strconv.Itoa(pid) + "]: "
}

// copyLines copies r to w line by line, each line preceded by pre; an
// unterminated last line gets a newline. With an empty pre it copies
// chunks as they come (a single app's output is passed through as is).
// When log is not nil, everything is written there too, without prefix
// (an app's own log file).
func (o *output) copyLines(w io.Writer, r io.Reader, pre string, log io.Writer) {
	if pre == "" {
		buf := make([]byte, 32*1024)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				o.write(w, buf[:n])
				if log != nil {
					o.write(log, buf[:n])
				}
			}
			if err != nil {
				return
			}
		}
	}
	// A small reader: the copier of each stream of each app waits in
	// Read for the pod's whole life, and its buffer stays allocated while
	// it waits. A line longer than the buffer is gathered in line, up to
	// maxLine.
	br := bufio.NewReaderSize(r, lineChunk)
	line := make([]byte, 0, 256)
	for {
		line = append(line[:0], pre...)
		var err error
		for {
			var chunk []byte
			chunk, err = br.ReadSlice('\n')
			line = append(line, chunk...)
			if !errors.Is(err, bufio.ErrBufferFull) || len(line)-len(pre) >= maxLine {
				break
			}
		}
		if len(line) > len(pre) {
			if line[len(line)-1] != '\n' {
				line = append(line, '\n')
			}
			o.write(w, line)
			if log != nil {
				o.write(log, line[len(pre):])
			}
		}
		if cap(line) > 4*lineChunk {
			// A long line's buffer is not kept for the idle wait.
			line = make([]byte, 0, 256)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}
