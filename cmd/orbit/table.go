package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// table writes rows for people (columns aligned with spaces) or, with
// --no-legend, for scripts: no header, and the fields of a row separated
// by exactly one tab, whatever their widths, so `awk -F'\t'` and `cut`
// read them.
type table struct {
	w      io.Writer
	out    *bufio.Writer // w, buffered: tabwriter writes a cell at a time
	tw     *tabwriter.Writer
	script bool
}

func newTable(w io.Writer, header []string, noLegend bool) *table {
	out := bufio.NewWriterSize(w, 64<<10)
	t := &table{w: out, out: out, script: noLegend}
	if !noLegend {
		t.tw = tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...string) {
	if t.script {
		fmt.Fprintln(t.w, strings.Join(cells, "\t"))
		return
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error {
	if t.tw != nil {
		if err := t.tw.Flush(); err != nil {
			return err
		}
	}
	return t.out.Flush()
}
