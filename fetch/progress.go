package fetch

import (
	"fmt"
	"io"
	"time"
)

// progressBar reports a download's bytes and rate on a terminal, redrawing
// one line at most every interval. It is a few lines of our own: a
// terminal line is all orbit needs, not a library's widgets.
type progressBar struct {
	w        io.Writer
	label    string
	total    int64 // -1 when unknown
	done     int64
	start    time.Time
	last     time.Time
	interval time.Duration
	now      func() time.Time
}

func newProgressBar(w io.Writer, label string, total int64, now func() time.Time) *progressBar {
	t := now()
	return &progressBar{w: w, label: label, total: total, start: t, interval: 200 * time.Millisecond, now: now}
}

func (p *progressBar) Write(b []byte) (int, error) {
	p.done += int64(len(b))
	if t := p.now(); t.Sub(p.last) >= p.interval {
		p.last = t
		p.draw(t)
	}
	return len(b), nil
}

// Done draws the final state and ends the line.
func (p *progressBar) Done() {
	p.draw(p.now())
	fmt.Fprintln(p.w)
}

func (p *progressBar) draw(t time.Time) {
	rate := 0.0
	if secs := t.Sub(p.start).Seconds(); secs > 0 {
		rate = float64(p.done) / secs
	}
	if p.total >= 0 {
		pct := 100.0
		if p.total > 0 {
			pct = float64(p.done) * 100 / float64(p.total)
		}
		fmt.Fprintf(p.w, "\r\033[K%s: %s / %s (%.0f%%) %s/s", p.label, humanBytes(p.done), humanBytes(p.total), pct, humanBytes(int64(rate)))
		return
	}
	fmt.Fprintf(p.w, "\r\033[K%s: %s %s/s", p.label, humanBytes(p.done), humanBytes(int64(rate)))
}

// humanBytes prints n in binary units: 512 B, 3.2 KiB, 1.0 MiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
