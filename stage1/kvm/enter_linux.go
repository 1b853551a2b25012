package kvm

import (
	"fmt"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/pod"
)

// Enter is the enter entrypoint.
func Enter(args []string) int { return pod.Main("stage1 kvm enter", args, enter) }

func enter(args []string) (int, error) {
	if _, err := contract.ParseEnter(args); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("enter: not supported by the kvm flavour yet: %w", errdefs.ErrNotFound)
}
