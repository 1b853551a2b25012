package network

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/appc/spec/schema/types"
	"github.com/containernetworking/cni/libcni"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func TestParseRequests(t *testing.T) {
	reqs, err := ParseRequests([]string{"default", "mynet:IP=10.1.2.3;K=V"})
	if err != nil || len(reqs) != 2 || reqs[1].Name != "mynet" || reqs[1].Args != "IP=10.1.2.3;K=V" {
		t.Fatalf("got %+v, %v", reqs, err)
	}
	for _, bad := range [][]string{{"host", "default"}, {"none", "a"}, {"a", "a"}, {"Bad!"}, {"host:IP=1.2.3.4"}, {"a:novalue"}} {
		if _, err := ParseRequests(bad); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%v: want ErrInvalid, got %v", bad, err)
		}
	}
}

func TestDefinitionsPrecedenceAndBuiltins(t *testing.T) {
	local := t.TempDir()
	write := func(name, data string) {
		if err := os.MkdirAll(filepath.Join(local, "net.d"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(local, "net.d", name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("10-default.conf", `{"cniVersion":"1.0.0","name":"default","type":"bridge"}`)
	write("20-x.conflist", `{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"ptp"}]}`)
	defs, err := Config{LocalConfig: local}.Definitions()
	if err != nil {
		t.Fatal(err)
	}
	if defs[Default].List.Plugins[0].Network.Type != "bridge" {
		t.Errorf("a net.d definition of default does not win over the built-in one")
	}
	if defs["x"] == nil || defs[DefaultRestricted] == nil || defs[DefaultRestricted].File != "" {
		t.Errorf("missing definitions: %v", defs)
	}
	r := defs[DefaultRestricted].List.Plugins[0].Bytes
	if !strings.Contains(string(r), `"ipMasq":false`) || strings.Contains(string(r), "0.0.0.0/0") || !strings.Contains(string(r), "172.17.0.0/16") {
		t.Errorf("default-restricted is not rkt's: %s", r)
	}
	write("30-bad.conf", `{"name":`)
	if _, err := (Config{LocalConfig: local}).Definitions(); !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "30-bad.conf") {
		t.Errorf("a malformed file: %v", err)
	}
}

func TestResolveNamesMissingPlugin(t *testing.T) {
	cfg := Config{LocalConfig: t.TempDir(), ExtraPluginPath: t.TempDir()}
	_, err := cfg.Resolve([]Request{{Name: "nosuch"}}, false)
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("unknown network: %v", err)
	}
	if _, err := os.Stat(filepath.Join(SystemPluginDir, "ptp")); err == nil {
		return // the plugins are installed: nothing is missing
	}
	if _, err := cfg.Resolve([]Request{{Name: Default}}, false); err == nil || !strings.Contains(err.Error(), PluginPackage) {
		t.Errorf("missing plugin: %v", err)
	}
}

func TestAttachmentConfig(t *testing.T) {
	list, err := libcni.ConfListFromBytes(builtin(Default))
	if err != nil {
		t.Fatal(err)
	}
	data, err := attachmentConfig(list, []PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}, "/var/lib/orbit/networks")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Plugins []struct {
			Type string `json:"type"`
			IPAM struct {
				DataDir string `json:"dataDir"`
			} `json:"ipam"`
			Capabilities map[string]bool `json:"capabilities"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Plugins) != 2 || got.Plugins[0].IPAM.DataDir != "/var/lib/orbit/networks" || got.Plugins[1].Type != "portmap" || !got.Plugins[1].Capabilities["portMappings"] {
		t.Errorf("got %s", data)
	}
}

func TestPortMappings(t *testing.T) {
	http := types.MustACName("http")
	declared := []types.Port{{Name: *http, Protocol: "tcp", Port: 80}}
	m, err := PortMappings([]types.ExposedPort{{Name: *http, HostPort: 8080}}, declared)
	if err != nil || len(m) != 1 || m[0] != (PortMapping{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}) {
		t.Errorf("got %+v, %v", m, err)
	}
	if _, err := PortMappings([]types.ExposedPort{{Name: *types.MustACName("dns"), HostPort: 53}}, declared); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("an undeclared port: %v", err)
	}
}

func TestIPAMDataDir(t *testing.T) {
	if got := IPAMDataDir("/var/lib/orbit/pods/run/1234"); got != "/var/lib/orbit/networks" {
		t.Errorf("got %s", got)
	}
}
