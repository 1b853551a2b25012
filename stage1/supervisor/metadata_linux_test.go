package supervisor

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

// routeHex writes an IPv4 address as /proc/net/route does.
func routeHex(a, b, c, d byte) string {
	return fmt.Sprintf("%08X", binary.NativeEndian.Uint32([]byte{a, b, c, d}))
}

func TestPodGateway(t *testing.T) {
	header := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	def := fmt.Sprintf("eth0\t00000000\t%s\t0003\t0\t0\t0\t00000000\t0\t0\t0\n", routeHex(172, 16, 28, 1))
	subnet := fmt.Sprintf("eth0\t%s\t%s\t0003\t0\t0\t0\t%s\t0\t0\t0\n", routeHex(172, 16, 28, 0), routeHex(172, 16, 28, 1), routeHex(255, 255, 255, 0))
	link := fmt.Sprintf("eth0\t%s\t00000000\t0001\t0\t0\t0\t%s\t0\t0\t0\n", routeHex(172, 16, 28, 1), routeHex(255, 255, 255, 255))
	for _, c := range []struct {
		name, table, want string
	}{
		{"default route", header + link + subnet + def, "172.16.28.1"},
		{"no default route (host-only network)", header + link + subnet, "172.16.28.1"},
	} {
		gw, err := podGateway(strings.NewReader(c.table))
		if err != nil || gw.String() != c.want {
			t.Errorf("%s: podGateway = %v, %v; want %s", c.name, gw, err, c.want)
		}
	}
	if gw, err := podGateway(strings.NewReader(header + link)); err == nil {
		t.Errorf("no gateway: podGateway = %v, want an error", gw)
	}
}

func TestMetadataURL(t *testing.T) {
	m := MetadataConfig{Endpoint: "tok", Host: "127.0.0.1"}
	if got, err := m.metadataURL(); err != nil || got != "http://127.0.0.1:18112/tok" {
		t.Errorf("metadataURL = %q, %v", got, err)
	}
	m = MetadataConfig{Endpoint: "2000:tok", Host: "127.0.0.1"}
	if got, err := m.metadataURL(); err != nil || got != "http://127.0.0.1:2000/tok" {
		t.Errorf("metadataURL = %q, %v", got, err)
	}
	for _, bad := range []MetadataConfig{{Endpoint: "", Host: "127.0.0.1"}, {Endpoint: "t", Host: "not-an-ip"}, {Endpoint: "a/b", Host: "127.0.0.1"}} {
		if got, err := bad.metadataURL(); err == nil {
			t.Errorf("%+v: metadataURL = %q, want an error", bad, got)
		}
	}
}
