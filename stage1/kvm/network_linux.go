package kvm

import (
	"fmt"
	"os"
	"strings"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/pod"
	"github.com/orbit-containers/orbit/stage1/supervisor"
)

// nic is the pod's network interface: a tap in the pod's network
// namespace, handed to QEMU, and the address the guest takes.
type nic struct {
	tap   *os.File
	guest supervisor.GuestNetwork
}

// setupNetwork gives the pod its networks; with --net=none the VM has no
// interface but its own loopback.
func setupNetwork(p *pod.Pod, flags *contract.RunOptions) (string, *nic, error) {
	if flags.Net == "none" {
		return "", nil, nil
	}
	return "", nil, fmt.Errorf("networks %q: not supported by the kvm flavour yet: %w", strings.TrimSpace(flags.Net), errdefs.ErrNotFound)
}

func teardownNetwork(p *pod.Pod) {}

func inNetNS(path string, f func() error) error { return f() }
