package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
)

// The bench table: what `make bench` prints. Each row is one operation,
// timed against a reference doing the same job (a shell pipeline, bare
// systemd-nspawn, the same operation at a smaller scale) in the same
// invocation, interleaved, with medians; peers (runc, crun, bubblewrap,
// podman) are extra columns where installed. The table is printed (or
// written to ORBIT_BENCH_TEXT) and, when ORBIT_BENCH_JSON names a file,
// written there as JSON. It never
// asserts on a time: a missed goal shows in the table, not as a failure.
//
// Adding rows: write a func(*benchTable) in a file of your own that calls
// t.add (timed rows) or t.value (measured values, such as a peak RSS), and
// list it in benchSections below. Documentation/benchmarks.md says more.

// benchSections lists the functions that add the table's rows, in order.
func benchSections() []func(*benchTable) {
	return []func(*benchTable){
		speedBenchStartup,
		speedBenchFetchRender,
		speedBenchScale,
		speedBenchMemory,
	}
}

// benchPeerNames are the peer columns, in order.
var benchPeerNames = []string{"runc", "crun", "bwrap", "podman"}

// benchTable collects the rows of one invocation.
type benchTable struct {
	t     *testing.T
	rows  []benchResult
	notes []string
}

// note adds a line printed under the table (a peer left out, say).
func (t *benchTable) note(format string, args ...any) {
	t.notes = append(t.notes, fmt.Sprintf(format, args...))
	t.t.Logf(format, args...)
}

// benchOp is one side of a row: do performs the operation once (round i)
// and fails the test if it fails.
type benchOp struct {
	Name string
	Do   func(i int)
}

// benchRow describes a timed row.
type benchRow struct {
	Op     string  // the operation, as the table shows it
	Goal   float64 // the largest ratio (orbit/reference) that meets the goal; 0 for none
	Rounds int     // interleaved rounds (odd, for a true median)
	Orbit  benchOp
	Ref    benchOp
	Peers  []benchOp // optional, named after benchPeerNames
	// Between, when set, runs untimed after each round (clean-up).
	Between func(i int)
}

// benchResult is one row of the table, as printed and written as JSON.
type benchResult struct {
	Op       string             `json:"operation"`
	Unit     string             `json:"unit"`
	Orbit    float64            `json:"orbit"`
	RefName  string             `json:"reference_name,omitempty"`
	Ref      float64            `json:"reference,omitempty"`
	Ratio    float64            `json:"ratio,omitempty"`
	Goal     string             `json:"goal,omitempty"`
	Met      *bool              `json:"met,omitempty"`
	Peers    map[string]float64 `json:"peers,omitempty"`
	Rounds   int                `json:"rounds,omitempty"`
	Comments string             `json:"comment,omitempty"`
}

// add times a row: every round runs orbit, the reference and the peers
// once each, rotating who goes first, and the row reports medians in
// milliseconds.
func (t *benchTable) add(r benchRow) {
	t.t.Helper()
	sides := append([]benchOp{r.Orbit, r.Ref}, r.Peers...)
	times := make([][]float64, len(sides))
	for i := 0; i < r.Rounds; i++ {
		for k := range sides {
			j := (i + k) % len(sides)
			start := time.Now()
			sides[j].Do(i)
			times[j] = append(times[j], float64(time.Since(start).Microseconds())/1000)
		}
		if r.Between != nil {
			r.Between(i)
		}
	}
	res := benchResult{Op: r.Op, Unit: "ms", Orbit: benchMedian(times[0]), RefName: r.Ref.Name, Ref: benchMedian(times[1]), Rounds: r.Rounds}
	if res.Ref > 0 {
		res.Ratio = res.Orbit / res.Ref
	}
	if r.Goal > 0 {
		met := res.Ratio <= r.Goal
		res.Goal, res.Met = fmt.Sprintf("≤ %.2fx", r.Goal), &met
	}
	for j, p := range r.Peers {
		if res.Peers == nil {
			res.Peers = map[string]float64{}
		}
		res.Peers[p.Name] = benchMedian(times[j+2])
	}
	t.rows = append(t.rows, res)
	t.t.Logf("%s: orbit %.1f ms, %s %.1f ms, ratio %.2f", r.Op, res.Orbit, res.RefName, res.Ref, res.Ratio)
}

// value adds a measured value (not a time) with an upper goal, such as a
// resident set size in MB.
func (t *benchTable) value(op, unit string, v, goal float64, comment string) {
	res := benchResult{Op: op, Unit: unit, Orbit: v, Comments: comment}
	if goal > 0 {
		met := v <= goal
		res.Goal, res.Met = fmt.Sprintf("≤ %g %s", goal, unit), &met
	}
	t.rows = append(t.rows, res)
	t.t.Logf("%s: %.2f %s", op, v, unit)
}

func benchMedian(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// print writes the table, aligned, with the peers that any row has.
func (t *benchTable) print(w *bytes.Buffer) {
	var peers []string
	for _, p := range benchPeerNames {
		for _, r := range t.rows {
			if _, ok := r.Peers[p]; ok {
				peers = append(peers, p)
				break
			}
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "OPERATION\tORBIT\tREFERENCE\tREF\tRATIO\tGOAL\tMET")
	for _, p := range peers {
		fmt.Fprintf(tw, "\t%s", strings.ToUpper(p))
	}
	fmt.Fprintln(tw)
	num := func(v float64, unit string) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f %s", v, unit)
	}
	for _, r := range t.rows {
		ratio, met, goal := "-", "-", r.Goal
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2fx", r.Ratio)
		}
		if r.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*r.Met]
		}
		if goal == "" {
			goal = "-"
		}
		ref := r.RefName
		if ref == "" {
			ref = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s", r.Op, num(r.Orbit, r.Unit), ref, num(r.Ref, r.Unit), ratio, goal, met)
		for _, p := range peers {
			v, ok := r.Peers[p]
			if !ok {
				fmt.Fprintf(tw, "\t-")
				continue
			}
			fmt.Fprintf(tw, "\t%s", num(v, r.Unit))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	for _, r := range t.rows {
		if r.Comments != "" {
			fmt.Fprintf(w, "* %s: %s\n", r.Op, r.Comments)
		}
	}
	for _, n := range t.notes {
		fmt.Fprintf(w, "* %s\n", n)
	}
}

// benchLoad is the machine's load average when the table was made.
func benchLoad() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// TestBenchTable makes the bench table. It runs only when asked for
// (ORBIT_BENCH=1, as `make bench` sets), since it takes minutes.
func TestBenchTable(t *testing.T) {
	if os.Getenv("ORBIT_BENCH") == "" {
		t.Skip("the bench table runs with ORBIT_BENCH=1 (make bench)")
	}
	start, loadBefore := time.Now(), benchLoad()
	bt := &benchTable{t: t}
	for _, section := range benchSections() {
		section(bt)
	}
	var out bytes.Buffer
	fmt.Fprintf(&out, "orbit bench: %s, load average before %s, after %s, %s\n\n", time.Now().UTC().Format(time.RFC3339), loadBefore, benchLoad(), time.Since(start).Round(time.Second))
	bt.print(&out)
	// go test shows a passing test's output only with -v: the table goes
	// to ORBIT_BENCH_TEXT when set (make bench prints that file).
	if path := os.Getenv("ORBIT_BENCH_TEXT"); path != "" {
		if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	} else {
		fmt.Print("\n" + out.String())
	}
	if path := os.Getenv("ORBIT_BENCH_JSON"); path != "" {
		data, err := json.MarshalIndent(map[string]any{
			"time":     time.Now().UTC().Format(time.RFC3339),
			"load":     benchLoad(),
			"duration": time.Since(start).Seconds(),
			"rows":     bt.rows,
			"notes":    bt.notes,
		}, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// benchRun runs a command to completion and fails the test, with its
// output, unless it exits 0.
func benchRun(t testing.TB, name string, args ...string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
}

// benchShell runs a shell command line like benchRun.
func benchShell(t testing.TB, script string) {
	t.Helper()
	benchRun(t, "/bin/sh", "-c", script)
}
