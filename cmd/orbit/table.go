package main

import (
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
	tw     *tabwriter.Writer
	script bool
}

func newTable(w io.Writer, header []string, noLegend bool) *table {
	t := &table{w: w, script: noLegend}
	if !noLegend {
		t.tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
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
	if t.tw == nil {
		return nil
	}
	return t.tw.Flush()
}
