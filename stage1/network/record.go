package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"

	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// Record is what a pod is joined to (contract.NetworkRecord). It is
// written before the namespace is made and before each plugin runs, so a
// process killed at any point leaves enough for gc to run CNI DEL on
// everything that may have been added (DEL of what was never added is
// harmless), and updated with each result.
type Record struct {
	// ContainerID is the CNI container ID: the pod's UUID.
	ContainerID string `json:"containerID"`
	// NetNS is the path of the namespace's bind mount.
	NetNS string `json:"netns"`
	// PluginPath and CacheDir are libcni's.
	PluginPath []string `json:"pluginPath"`
	CacheDir   string   `json:"cacheDir"`
	// Networks are the CNI networks, in order (eth0 first); empty for
	// --net=none.
	Networks []Attachment `json:"networks"`
}

// An Attachment is one network the pod joins.
type Attachment struct {
	Name   string `json:"name"`
	IfName string `json:"ifName"`
	// Args are the CNI_ARGS given with --net.
	Args string `json:"args,omitempty"`
	// File is the definition's file ("" for a built-in network).
	File string `json:"file,omitempty"`
	// Config is the network configuration list exactly as the plugins are
	// given it (with the IPAM data directory and portmap filled in).
	Config json.RawMessage `json:"config"`
	// PortMappings are portmap's runtime configuration.
	PortMappings []PortMapping `json:"portMappings,omitempty"`
	// Result is the CNI result, once ADD succeeded.
	Result json.RawMessage `json:"result,omitempty"`
}

// PortMapping is one forwarded port, as the portmap plugin takes it.
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// ReadRecord reads a pod's record; a pod without one has nothing to undo
// (nil, nil).
func ReadRecord(dir string) (*Record, error) {
	data, err := os.ReadFile(contract.NetworkRecord(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", contract.NetworkRecord(dir), err)
	}
	return &r, nil
}

func (r *Record) write(dir string) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return atomicfile.Write(contract.NetworkRecord(dir), data, 0o600)
}

// result is an attachment's CNI result, nil before ADD succeeded.
func (a *Attachment) result() *types100.Result {
	if len(a.Result) == 0 {
		return nil
	}
	var r types100.Result
	if json.Unmarshal(a.Result, &r) != nil {
		return nil
	}
	return &r
}

// NetInfo is an entry of rkt's net-info.json (contract.NetInfo).
type NetInfo struct {
	NetName    string `json:"netName"`
	ConfPath   string `json:"netConf"`
	PluginPath string `json:"pluginPath"`
	IfName     string `json:"ifName"`
	IP         net.IP `json:"ip"`
	Args       string `json:"args"`
	Mask       net.IP `json:"mask"`
	// HostIP is the address of the host side as the pod reaches it (the
	// gateway of the pod's address), for services the host offers pods.
	HostIP net.IP `json:"hostIP,omitempty"`
}

// netInfos turns the record's results into net-info.json's entries.
func (r *Record) netInfos() []NetInfo {
	out := []NetInfo{}
	for i := range r.Networks {
		a := &r.Networks[i]
		ni := NetInfo{NetName: a.Name, ConfPath: a.File, IfName: a.IfName, Args: a.Args}
		if res := a.result(); res != nil {
			for _, ip := range res.IPs {
				if ip.Address.IP.To4() == nil && ni.IP != nil {
					continue
				}
				ni.IP, ni.Mask, ni.HostIP = ip.Address.IP, net.IP(ip.Address.Mask), ip.Gateway
				break
			}
		}
		out = append(out, ni)
	}
	return out
}

// ReadNetInfo reads a pod's net-info.json (nil when it has none: a pod in
// the host's network, or one whose networks were never set up).
func ReadNetInfo(dir string) ([]NetInfo, error) {
	data, err := os.ReadFile(contract.NetInfo(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []NetInfo
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("%s: %w", contract.NetInfo(dir), err)
	}
	return out, nil
}

// DNS is name resolution a network's plugins handed the pod.
type DNS struct {
	Nameservers, Search, Options []string
	Domain                       string
}

// DNS returns the first DNS configuration a network's result carries
// (nil when none carries name servers).
func (r *Record) DNS() *DNS {
	for i := range r.Networks {
		if res := r.Networks[i].result(); res != nil && len(res.DNS.Nameservers) > 0 {
			return &DNS{Nameservers: res.DNS.Nameservers, Search: res.DNS.Search, Options: res.DNS.Options, Domain: res.DNS.Domain}
		}
	}
	return nil
}
