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
	// PrivateUsers is the host ID range of the pod's user namespace
	// (contract.UserRange), picked when it is prepared; empty when the pod
	// runs without one.
	PrivateUsers string `json:"privateUsers,omitempty"`
}

// overlayMount is one overlayfs mount of a pod: paths relative to the pod
// directory, except the lower directories, which are absolute paths in the
// store: Lowers, top first (an OCI image's layer trees), or Lower alone.
type overlayMount struct {
	Lower  string   `json:"lower,omitempty"`
	Lowers []string `json:"lowers,omitempty"`
	Upper  string   `json:"upper"`
	Work   string   `json:"work"`
	Target string   `json:"target"`
	// IDMappedLower, for a pod with a user namespace, is where Lower is
	// mounted ID-mapped into the pod's range to serve as the lower layer
	// (contract.OverlayIDMappedLower); IDMappedLowers does the same for
	// each of Lowers, in the same order. Where the kernel or the store's
	// filesystem cannot, the store's tree itself is the layer, and stage1
	// chowns the pod's files through the overlay into its upper directory.
	IDMappedLower  string   `json:"idmappedLower,omitempty"`
	IDMappedLowers []string `json:"idmappedLowers,omitempty"`
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
