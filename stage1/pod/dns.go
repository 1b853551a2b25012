package pod

import (
	"fmt"
	"strings"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// FileMount is a single file bound into an app.
type FileMount struct {
	Source, Target string
}

// DNSMounts reads stage1's --dns-conf-mode argument
// ("resolv=host|stage0|none|default,hosts=host|stage0|default") and
// returns the files to bind over the apps' /etc/resolv.conf and
// /etc/hosts. "default" leaves the image's own file.
func (p *Pod) DNSMounts(mode string) ([]FileMount, error) {
	if mode == "" {
		return nil, nil
	}
	var out []FileMount
	for _, part := range strings.Split(mode, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("--dns-conf-mode %q: %w", mode, errdefs.ErrInvalid)
		}
		var host, stage0, target string
		switch k {
		case "resolv":
			host, stage0, target = "/etc/resolv.conf", contract.InStage1(p.Dir, contract.Stage1ResolvConf), "/etc/resolv.conf"
		case "hosts":
			host, stage0, target = "/etc/hosts", contract.InStage1(p.Dir, contract.Stage1Hosts), "/etc/hosts"
		default:
			return nil, fmt.Errorf("--dns-conf-mode %q: unknown key %q: %w", mode, k, errdefs.ErrInvalid)
		}
		switch v {
		case "host":
			out = append(out, FileMount{Source: host, Target: target})
		case "stage0":
			out = append(out, FileMount{Source: stage0, Target: target})
		case "none", "default":
		default:
			return nil, fmt.Errorf("--dns-conf-mode %q: unknown value %q: %w", mode, v, errdefs.ErrInvalid)
		}
	}
	return out, nil
}
