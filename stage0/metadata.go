package stage0

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/orbit-containers/orbit/metadata"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// RegisterMetadata registers a prepared pod with the metadata service
// listening on socket: its pod manifest and its apps' image manifests, as
// the pod directory holds them. It returns the value of the run
// entrypoint's --mds-token (RunConfig.MDSToken). The registration lasts
// while this process lives (it becomes stage1's run entrypoint), or until
// gc withdraws it.
func RegisterMetadata(ctx context.Context, p *Pod, socket string) (string, error) {
	pmData, err := p.ManifestBytes()
	if err != nil {
		return "", err
	}
	pm, err := ParsePodManifest(pmData)
	if err != nil {
		return "", fmt.Errorf("pod %s: %w", p.UUID, err)
	}
	reg := &metadata.Registration{UUID: p.UUID, PodManifest: pmData, Images: map[string]json.RawMessage{}}
	for _, ra := range pm.Apps {
		data, err := os.ReadFile(contract.AppImageManifest(p.Path(), ra.Name.String()))
		if err != nil {
			return "", fmt.Errorf("pod %s: app %s: %w", p.UUID, ra.Name, err)
		}
		reg.Images[ra.Name.String()] = data
	}
	out, err := metadata.NewClient(socket).Register(ctx, reg)
	if err != nil {
		return "", fmt.Errorf("registering pod %s with the metadata service: %w", p.UUID, err)
	}
	return contract.MetadataEndpoint{Port: out.Port, Token: out.Token}.String(), nil
}

// UnregisterMetadata withdraws a pod's registration, if the metadata
// service listening on socket runs and has one.
func UnregisterMetadata(ctx context.Context, uuid, socket string) error {
	if _, err := os.Stat(socket); err != nil {
		return nil
	}
	return metadata.NewClient(socket).Unregister(ctx, uuid)
}
