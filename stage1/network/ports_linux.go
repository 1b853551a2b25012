package network

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"

	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// PortMappings turns the pod's exposed ports (--port) into portmap's
// mappings, each to the port of that name an app's image declares.
func PortMappings(exposed []types.ExposedPort, declared []types.Port) ([]PortMapping, error) {
	var out []PortMapping
	for _, e := range exposed {
		found := false
		for _, p := range declared {
			if p.Name != e.Name {
				continue
			}
			m := PortMapping{HostPort: int(e.HostPort), ContainerPort: int(p.Port), Protocol: p.Protocol}
			if m.Protocol == "" {
				m.Protocol = "tcp"
			}
			if e.HostIP != nil && !e.HostIP.IsUnspecified() {
				m.HostIP = e.HostIP.String()
			}
			out = append(out, m)
			found = true
			break
		}
		if !found {
			return nil, fmt.Errorf("--port=%s: no app of the pod declares a port named %q: %w", e.Name, e.Name, errdefs.ErrInvalid)
		}
	}
	return out, nil
}

// CheckPortFree fails when a host port cannot be forwarded: something on
// the host listens on it.
func CheckPortFree(m PortMapping) error {
	addr := net.JoinHostPort(m.HostIP, strconv.Itoa(m.HostPort))
	var err error
	switch m.Protocol {
	case "udp":
		var c net.PacketConn
		if c, err = net.ListenPacket("udp", addr); err == nil {
			c.Close()
		}
	default:
		var l net.Listener
		if l, err = net.Listen("tcp", addr); err == nil {
			l.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("--port: host port %d/%s is already in use: %w", m.HostPort, m.Protocol, errdefs.ErrAlreadyExists)
	}
	return nil
}

// checkPortsFree fails when a host port is in use on the host or forwarded
// to another running pod (one in the same state directory).
func checkPortsFree(dir string, ports []PortMapping) error {
	for _, m := range ports {
		if err := CheckPortFree(m); err != nil {
			return err
		}
	}
	if len(ports) == 0 {
		return nil
	}
	others, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "*", filepath.Base(contract.NetworkRecord(""))))
	for _, f := range others {
		if filepath.Dir(f) == dir {
			continue
		}
		rec, err := ReadRecord(filepath.Dir(f))
		if err != nil || rec == nil {
			continue
		}
		for _, a := range rec.Networks {
			for _, theirs := range a.PortMappings {
				for _, m := range ports {
					if theirs.HostPort == m.HostPort && theirs.Protocol == m.Protocol && (theirs.HostIP == "" || m.HostIP == "" || theirs.HostIP == m.HostIP) {
						return fmt.Errorf("--port: host port %d/%s is already forwarded to pod %s: %w", m.HostPort, m.Protocol, filepath.Base(filepath.Dir(f)), errdefs.ErrAlreadyExists)
					}
				}
			}
		}
	}
	return nil
}
