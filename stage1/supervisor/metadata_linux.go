package supervisor

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage2"
)

// MetadataConfig gives the pod's apps the appc metadata service
// (AC_METADATA_URL).
type MetadataConfig struct {
	// Endpoint is the run entrypoint's --mds-token value (the pod's token
	// and the service's port).
	Endpoint string `json:"endpoint"`
	// Host is the address the apps reach the service at: 127.0.0.1 for a
	// pod in the host's network. Empty means the host side of the pod's
	// own network, which the supervisor reads from the routes of its
	// network namespace (the gateway of its default route, else of any
	// route): what a CNI ptp or bridge network makes it.
	Host string `json:"host,omitempty"`
}

// procRoute is the IPv4 routing table of the supervisor's network
// namespace.
const procRoute = "/proc/net/route"

// metadataURL works out the apps' AC_METADATA_URL.
func (m *MetadataConfig) metadataURL() (string, error) {
	ep, err := contract.ParseMetadataEndpoint(m.Endpoint)
	if err != nil {
		return "", fmt.Errorf("metadata service: %w: %w", err, errdefs.ErrInvalid)
	}
	host := m.Host
	if host == "" {
		f, err := os.Open(procRoute)
		if err != nil {
			return "", fmt.Errorf("metadata service: %w", err)
		}
		defer f.Close()
		gw, err := podGateway(f)
		if err != nil {
			return "", fmt.Errorf("metadata service: %w", err)
		}
		host = gw.String()
	} else if net.ParseIP(host) == nil {
		return "", fmt.Errorf("metadata service: host %q is not an IP address: %w", host, errdefs.ErrInvalid)
	}
	return ep.URL(host), nil
}

// setMetadataURL gives every app (and so its event handlers) the URL.
func (c *Config) setMetadataURL() error {
	if c.Metadata == nil {
		return nil
	}
	url, err := c.Metadata.metadataURL()
	if err != nil {
		return err
	}
	for i := range c.Apps {
		c.Apps[i].App.Env = stage2.SetEnv(c.Apps[i].App.Env, contract.MetadataURLEnv, url)
	}
	return nil
}

// podGateway reads a /proc/net/route table and returns the gateway of the
// default route, or else of the first route that has one.
func podGateway(r io.Reader) (net.IP, error) {
	const flagGateway = 0x2
	var fallback net.IP
	s := bufio.NewScanner(r)
	for first := true; s.Scan(); first = false {
		f := strings.Fields(s.Text())
		if first || len(f) < 8 {
			continue // the header
		}
		var flags uint32
		if _, err := fmt.Sscanf(f[3], "%x", &flags); err != nil || flags&flagGateway == 0 {
			continue
		}
		gw, err := hexIPv4(f[2])
		if err != nil || gw.IsUnspecified() {
			continue
		}
		if f[1] == "00000000" && f[7] == "00000000" {
			return gw, nil
		}
		if fallback == nil {
			fallback = gw
		}
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	if fallback == nil {
		return nil, fmt.Errorf("the pod's network has no route through the host to reach the service by: %w", errdefs.ErrNotFound)
	}
	return fallback, nil
}

// hexIPv4 reads an address as /proc/net/route writes it: the address's
// bytes read as one number in the host's byte order, in hex.
func hexIPv4(s string) (net.IP, error) {
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil || len(s) != 8 {
		return nil, fmt.Errorf("bad address %q", s)
	}
	ip := make(net.IP, 4)
	binary.NativeEndian.PutUint32(ip, uint32(v))
	return ip, nil
}
