package pod

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/orbit-containers/orbit/internal/errdefs"
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
			host, stage0, target = "/etc/resolv.conf", filepath.Join(p.Stage1Rootfs(), "etc", "rkt-resolv.conf"), "/etc/resolv.conf"
		case "hosts":
			host, stage0, target = "/etc/hosts", filepath.Join(p.Stage1Rootfs(), "etc", "rkt-hosts"), "/etc/hosts"
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
