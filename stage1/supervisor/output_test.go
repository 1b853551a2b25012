package supervisor

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

func TestCopyLinesPrefixes(t *testing.T) {
	var o output
	var buf bytes.Buffer
	long := strings.Repeat("x", maxLine+10)
	o.copyLines(&buf, strings.NewReader("one\ntwo\n\n"+long+"\nlast"), "web[42]: ", nil)
	want := "web[42]: one\nweb[42]: two\nweb[42]: \n" +
		"web[42]: " + long[:maxLine] + "\n" +
		"web[42]: " + long[maxLine:] + "\n" +
		"web[42]: last\n"
	if buf.String() != want {
		t.Errorf("got %q\nwant %q", buf.String(), want)
	}
}

func TestCopyLinesPassThrough(t *testing.T) {
	var o output
	var buf bytes.Buffer
	o.copyLines(&buf, strings.NewReader("no newline at the end"), "", nil)
	if buf.String() != "no newline at the end" {
		t.Errorf("got %q", buf.String())
	}
}

// Lines from many writers reach the output whole, however the bytes were
// split when they were written.
func TestCopyLinesNoInterleaving(t *testing.T) {
	var o output
	var buf bytes.Buffer
	var wg sync.WaitGroup
	for _, name := range []string{"a", "b", "c"} {
		r, w := io.Pipe()
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.copyLines(&buf, r, name+"[1]: ", nil)
		}()
		go func() {
			for range 200 {
				for _, part := range []string{name + name, name + "\n"} {
					_, _ = w.Write([]byte(part))
					time.Sleep(time.Microsecond)
				}
			}
			w.Close()
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 600 {
		t.Fatalf("%d lines, want 600", len(lines))
	}
	for _, l := range lines {
		n := l[:1]
		if l != n+"[1]: "+n+n+n {
			t.Fatalf("mixed line %q", l)
		}
	}
}

func TestCopyLinesToLog(t *testing.T) {
	var o output
	var pod, log bytes.Buffer
	o.copyLines(&pod, strings.NewReader("one\ntwo"), "web[7]: ", &log)
	if pod.String() != "web[7]: one\nweb[7]: two\n" {
		t.Errorf("pod output %q", pod.String())
	}
	if log.String() != "one\ntwo\n" {
		t.Errorf("log %q", log.String())
	}
}

// Lines longer than the copier's small read buffer come out whole, and
// lines longer than maxLine in pieces of maxLine, however the reads split
// them.
func TestCopyLinesLongLinesSmallReads(t *testing.T) {
	var o output
	var buf bytes.Buffer
	mid := strings.Repeat("m", lineChunk+1)
	twice := strings.Repeat("t", 2*maxLine)
	in := mid + "\n" + twice + "\nend\n"
	o.copyLines(&buf, iotest.HalfReader(strings.NewReader(in)), "a[1]: ", nil)
	want := "a[1]: " + mid + "\n" +
		"a[1]: " + twice[:maxLine] + "\n" +
		"a[1]: " + twice[maxLine:] + "\n" +
		"a[1]: \n" +
		"a[1]: end\n"
	if buf.String() != want {
		t.Errorf("got %d bytes, want %d:\n%.200q", buf.Len(), len(want), buf.String())
	}
}
