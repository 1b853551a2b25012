package stage0

import (
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/orbit-containers/orbit/internal/atomicfile"
)

// podRecord is stage0's own note about a pod, kept in orbit.json beside
// rkt's files: what the rkt layout has no place for.
type podRecord struct {
	CreatedAt time.Time `json:"createdAt"`
	// StartedAt is set when stage1 is started.
	StartedAt time.Time `json:"startedAt,omitempty"`
	// Stage1 is the stage1 image ID; Stage1Flavour its built-in flavour, if any.
	Stage1        string `json:"stage1"`
	Stage1Flavour string `json:"stage1Flavour,omitempty"`
	// Overlay says whether the rootfs are overlay mounts (else copies).
	Overlay bool `json:"overlay"`
	// Mounts are the overlay mounts to make before stage1 starts, in order.
	Mounts []overlayMount `json:"mounts,omitempty"`
}

// overlayMount is one overlayfs mount of a pod: paths relative to the pod
// directory, except Lower which is the absolute tree path in the store.
type overlayMount struct {
	Lower  string `json:"lower"`
	Upper  string `json:"upper"`
	Work   string `json:"work"`
	Target string `json:"target"`
}

const recordFile = "orbit.json"

func (p *Pod) record() (*podRecord, error) {
	data, err := os.ReadFile(p.File(recordFile))
	if err != nil {
		return nil, err
	}
	var r podRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("pod %s: reading %s: %w", p.UUID, recordFile, err)
	}
	return &r, nil
}

func (p *Pod) writeRecord(r *podRecord) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Replace(p.File(recordFile), data, 0o644)
}
