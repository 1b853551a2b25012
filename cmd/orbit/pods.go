package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage0"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/network"
)

// getPod finds a pod by UUID or unique prefix.
func getPod(g *globalOptions, id string) (*stage0.Pod, error) {
	return stage0.Get(g.podsDir(), id)
}

// outputFormat is the --format of list-like commands.
type outputFormat int

const (
	formatTabbed outputFormat = iota
	formatJSON
	formatJSONPretty
)

func parseFormat(s string) (outputFormat, error) {
	switch s {
	case "", "tabbed":
		return formatTabbed, nil
	case "json":
		return formatJSON, nil
	case "json-pretty":
		return formatJSONPretty, nil
	}
	return 0, fmt.Errorf("--format=%s: want tabbed, json or json-pretty: %w", s, errdefs.ErrInvalid)
}

func writeJSONOut(w io.Writer, f outputFormat, v any) error {
	var data []byte
	var err error
	if f == formatJSONPretty {
		data, err = json.MarshalIndent(v, "", "\t")
	} else {
		data, err = json.Marshal(v)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", data)
	return err
}

// podJSON is a pod as --format=json shows it (rkt's field names).
type podJSON struct {
	Name       string            `json:"name"`
	State      string            `json:"state"`
	Networks   []network.NetInfo `json:"networks"`
	AppNames   []string          `json:"app_names"`
	Apps       []appJSON         `json:"apps"`
	Pid        int               `json:"pid,omitempty"`
	CreatedAt  int64             `json:"created_at,omitempty"`
	StartedAt  int64             `json:"started_at,omitempty"`
	GCMarkedAt int64             `json:"gc_marked_at,omitempty"`
	// KVM is what a kvm pod's VM boots.
	KVM *contract.KVMBoot `json:"kvm,omitempty"`
}

type appJSON struct {
	Name      string `json:"name"`
	State     string `json:"state"`
	ImageID   string `json:"image_id"`
	ImageName string `json:"image_name,omitempty"`
	ExitCode  *int   `json:"exit_code,omitempty"`
	ExitedAt  int64  `json:"finished_at,omitempty"`
	OOMKilled bool   `json:"oom_killed,omitempty"`
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func toPodJSON(st *stage0.Status) podJSON {
	pj := podJSON{
		Name: st.UUID, State: st.State.String(), Networks: append([]network.NetInfo{}, st.Networks...), AppNames: []string{}, Apps: []appJSON{},
		Pid: st.Pid, CreatedAt: nanos(st.CreatedAt), StartedAt: nanos(st.StartedAt), GCMarkedAt: nanos(st.GCMarkedAt),
		KVM: st.KVM,
	}
	for _, a := range st.Apps {
		aj := appJSON{Name: a.Name, ImageID: a.ImageID, ExitCode: a.ExitCode, ExitedAt: nanos(a.ExitedAt), OOMKilled: a.OOMKilled}
		aj.State = appState(st.State, a)
		aj.ImageName = a.ImageName
		pj.AppNames = append(pj.AppNames, a.Name)
		pj.Apps = append(pj.Apps, aj)
	}
	return pj
}

func appState(pod stage0.State, a stage0.AppStatus) string {
	switch {
	case a.State != "":
		return a.State // a sandbox's app
	case a.ExitCode != nil:
		return "exited"
	case pod == stage0.Running:
		return "running"
	case pod.AfterRun():
		return "exited"
	}
	return pod.String()
}

// ago renders a time the way `orbit list` shows it.
func ago(t time.Time, full bool) string {
	if t.IsZero() {
		return ""
	}
	if full {
		return t.Local().Format("2006-01-02 15:04:05.000 -0700 MST")
	}
	d := time.Since(t).Round(time.Second)
	n, unit := int(d.Hours()/24), "day"
	switch {
	case d < time.Minute:
		n, unit = int(d.Seconds()), "second"
	case d < time.Hour:
		n, unit = int(d.Minutes()), "minute"
	case d < 48*time.Hour:
		n, unit = int(d.Hours()), "hour"
	}
	if n != 1 {
		unit += "s"
	}
	return fmt.Sprintf("%d %s ago", n, unit)
}

func shortUUID(id string, full bool) string {
	if full {
		return id
	}
	if i := strings.IndexByte(id, '-'); i > 0 {
		return id[:i]
	}
	return id
}

// errAlreadyDone tells forEachPod that do has reported on the pod itself
// and nothing failed.
var errAlreadyDone = errors.New("already done")

// forEachPod applies do to every pod named on the command line (and in
// --uuid-file), printing each UUID done; one failing pod does not stop the
// others, but makes the command exit non-zero.
func forEachPod(g *globalOptions, cmd *cobra.Command, args []string, uuidFile string, do func(*stage0.Pod) error) error {
	if uuidFile != "" {
		id, err := readUUIDFile(uuidFile)
		if err != nil {
			return err
		}
		args = append(args, id)
	}
	if len(args) == 0 {
		return usageErr(cmd, commandName(cmd)+" needs a pod UUID or --uuid-file")
	}
	failed := 0
	for _, id := range args {
		p, err := getPod(g, id)
		if err == nil {
			err = do(p)
		}
		if err == errAlreadyDone {
			continue
		}
		if err != nil {
			g.errorf("%v", err)
			failed++
			continue
		}
		g.printf("%q\n", p.UUID)
	}
	if failed > 0 {
		return exitError{code: contract.ExitFailure}
	}
	return nil
}

// oneUUID is the pod a single-pod command is about: its argument or the
// UUID in --uuid-file, exactly one of them.
func oneUUID(cmd *cobra.Command, args []string, uuidFile string) (string, error) {
	switch {
	case uuidFile != "" && len(args) > 0:
		return "", usageErr(cmd, "give a pod UUID or --uuid-file, not both")
	case uuidFile != "":
		return readUUIDFile(uuidFile)
	case len(args) == 1:
		return args[0], nil
	}
	return "", usageErr(cmd, commandName(cmd)+" needs a pod UUID or --uuid-file")
}

// networksColumn is a pod's networks as `list` and `status` show them,
// rkt's way: NAME:ip4=ADDRESS, comma-separated.
func networksColumn(nets []network.NetInfo) string {
	var parts []string
	for _, n := range nets {
		if n.IP == nil {
			parts = append(parts, n.NetName)
			continue
		}
		family := "ip4"
		if n.IP.To4() == nil {
			family = "ip6"
		}
		parts = append(parts, fmt.Sprintf("%s:%s=%s", n.NetName, family, n.IP))
	}
	return strings.Join(parts, ",")
}
