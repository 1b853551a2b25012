// Package network gives a pod its own network namespace and joins it to
// networks through CNI plugins, as rkt's "contained" networking did:
//
//   - the networks a pod asks for (--net) are found by name in
//     <local-config>/net.d, then /etc/rkt/net.d (rkt's directory), then
//     among the built-in ones, "default" and "default-restricted"; "host"
//     and "none" are not CNI networks;
//   - the plugins (Debian's containernetworking-plugins) are called through
//     libcni, from $CNI_PATH, <local-config>/cni/bin and /usr/lib/cni;
//   - what a pod is joined to is recorded in its directory before any
//     plugin runs and the results after (record.go), so gc can undo it with
//     nothing in memory.
package network

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/appc/spec/schema/types"
	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// Names of the networks that are not read from net.d.
const (
	Host              = "host"
	None              = "none"
	Default           = "default"
	DefaultRestricted = "default-restricted"
)

// RktConfigDir is rkt's configuration directory, whose net.d orbit reads
// too so that existing network definitions keep working.
const RktConfigDir = "/etc/rkt"

// SystemPluginDir is where Debian's containernetworking-plugins installs
// the plugins.
const SystemPluginDir = "/usr/lib/cni"

// PluginPackage is the Debian package with the standard plugins.
const PluginPackage = "containernetworking-plugins"

// cniVersion is the CNI spec version of the built-in networks (Debian 12's
// plugins implement up to 1.0.0).
const cniVersion = "1.0.0"

// The built-in networks, rkt's: the default network (a veth pair made by
// ptp, an address in 172.16.28.0/24, a default route and masquerading) and
// the restricted one (172.17.0.0/16, no route beyond the host, no
// masquerading).
func builtin(name string) []byte {
	switch name {
	case Default:
		return []byte(`{"cniVersion":"` + cniVersion + `","name":"default","plugins":[{"type":"ptp","ipMasq":true,` +
			`"ipam":{"type":"host-local","subnet":"172.16.28.0/24","routes":[{"dst":"0.0.0.0/0"}]}}]}`)
	case DefaultRestricted:
		return []byte(`{"cniVersion":"` + cniVersion + `","name":"default-restricted","plugins":[{"type":"ptp","ipMasq":false,` +
			`"ipam":{"type":"host-local","subnet":"172.17.0.0/16"}}]}`)
	}
	return nil
}

// A Request is one --net value: a network name and optional CNI_ARGS
// ("IP=10.1.2.3;K=V").
type Request struct {
	Name string
	Args string
}

// ParseRequests reads --net values. "host" and "none" stand alone; every
// name is an appc name, given once.
func ParseRequests(values []string) ([]Request, error) {
	var out []Request
	seen := map[string]bool{}
	for _, v := range values {
		name, args, _ := strings.Cut(v, ":")
		if _, err := types.NewACName(name); err != nil {
			return nil, fmt.Errorf("--net: %q is not a network name: %w", name, errdefs.ErrInvalid)
		}
		if seen[name] {
			return nil, fmt.Errorf("--net: network %q given twice: %w", name, errdefs.ErrInvalid)
		}
		seen[name] = true
		if args != "" {
			for _, kv := range strings.Split(args, ";") {
				if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
					return nil, fmt.Errorf("--net=%s: CNI argument %q: want NAME=VALUE, separated by semicolons: %w", v, kv, errdefs.ErrInvalid)
				}
			}
			if name == Host || name == None {
				return nil, fmt.Errorf("--net=%s: the %s network takes no arguments: %w", v, name, errdefs.ErrInvalid)
			}
		}
		out = append(out, Request{Name: name, Args: args})
	}
	if len(out) > 1 && (seen[Host] || seen[None]) {
		return nil, fmt.Errorf("--net=%s: %q and %q stand alone, not with other networks: %w", strings.Join(values, ","), Host, None, errdefs.ErrInvalid)
	}
	return out, nil
}

// IsHost reports whether the requests put the pod in the host's network
// (no request at all means the flavour's default, which the caller
// decides).
func IsHost(reqs []Request) bool { return len(reqs) == 1 && reqs[0].Name == Host }

// Config is where network definitions and plugins are found.
type Config struct {
	// LocalConfig is orbit's --local-config directory ("" for none).
	LocalConfig string
	// ExtraPluginPath is searched before the other plugin directories
	// ($CNI_PATH, colon-separated).
	ExtraPluginPath string
}

// ConfigDirs are the net.d directories, in order of precedence.
func (c Config) ConfigDirs() []string {
	var dirs []string
	if c.LocalConfig != "" {
		dirs = append(dirs, filepath.Join(c.LocalConfig, "net.d"))
	}
	if c.LocalConfig == "" || filepath.Clean(c.LocalConfig) != RktConfigDir {
		dirs = append(dirs, filepath.Join(RktConfigDir, "net.d"))
	}
	return dirs
}

// PluginPath is where plugins are looked for, in order.
func (c Config) PluginPath() []string {
	var path []string
	for _, p := range filepath.SplitList(c.ExtraPluginPath) {
		if p != "" {
			path = append(path, p)
		}
	}
	if c.LocalConfig != "" {
		path = append(path, filepath.Join(c.LocalConfig, "cni", "bin"))
	}
	return append(path, SystemPluginDir)
}

// A Definition is a network as CNI plugins are given it.
type Definition struct {
	Name string
	// File is where it was read from ("" for a built-in network).
	File string
	List *libcni.NetworkConfigList
}

// Definitions reads every network definition in the net.d directories
// (*.conf, *.json and *.conflist), the first of a name winning, then the
// built-in ones not defined there. A file that is not a valid CNI
// configuration fails the whole read: a pod is never joined to networks
// other than those its operator wrote.
func (c Config) Definitions() (map[string]*Definition, error) {
	defs := map[string]*Definition{}
	for _, dir := range c.ConfigDirs() {
		files, err := libcni.ConfFiles(dir, []string{".conf", ".json", ".conflist"})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("reading %s: %w", dir, err)
		}
		sort.Strings(files)
		for _, f := range files {
			d, err := readDefinition(f)
			if err != nil {
				return nil, err
			}
			if _, ok := defs[d.Name]; !ok {
				defs[d.Name] = d
			}
		}
	}
	for _, name := range []string{Default, DefaultRestricted} {
		if _, ok := defs[name]; !ok {
			list, err := libcni.ConfListFromBytes(builtin(name))
			if err != nil {
				return nil, err
			}
			defs[name] = &Definition{Name: name, List: list}
		}
	}
	return defs, nil
}

func readDefinition(file string) (*Definition, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("network definition %s: %w", file, err)
	}
	bad := func(err error) error {
		return fmt.Errorf("network definition %s: %s: %w", file, oneLine(err.Error()), errdefs.ErrInvalid)
	}
	var list *libcni.NetworkConfigList
	if strings.HasSuffix(file, ".conflist") {
		list, err = libcni.ConfListFromBytes(data)
	} else {
		var conf *libcni.NetworkConfig
		if conf, err = libcni.ConfFromBytes(data); err == nil {
			if conf.Network.Type == "" {
				return nil, bad(errors.New("no plugin type"))
			}
			list, err = libcni.ConfListFromConf(conf)
		}
	}
	if err != nil {
		return nil, bad(err)
	}
	if _, err := types.NewACName(list.Name); err != nil {
		return nil, bad(fmt.Errorf("network name %q is not an appc name", list.Name))
	}
	if list.Name == Host || list.Name == None {
		return nil, bad(fmt.Errorf("network name %q is reserved", list.Name))
	}
	for _, p := range list.Plugins {
		if p.Network.Type == "" {
			return nil, bad(errors.New("a plugin has no type"))
		}
	}
	return &Definition{Name: list.Name, File: file, List: list}, nil
}

// Resolve finds the definition of every requested network and checks that
// the plugins each needs (and portmap, when ports are forwarded) are
// installed: an unknown name, a malformed definition or a missing plugin is
// an error before anything is configured.
func (c Config) Resolve(reqs []Request, forwardsPorts bool) ([]*Definition, error) {
	var out []*Definition
	cniReqs := 0
	for _, r := range reqs {
		if r.Name != Host && r.Name != None {
			cniReqs++
		}
	}
	if cniReqs == 0 {
		return nil, nil
	}
	defs, err := c.Definitions()
	if err != nil {
		return nil, err
	}
	for _, r := range reqs {
		d, ok := defs[r.Name]
		if !ok {
			return nil, fmt.Errorf("--net: no network %q: not built in, and no definition in %s: %w", r.Name, strings.Join(c.ConfigDirs(), " or "), errdefs.ErrNotFound)
		}
		for _, p := range d.List.Plugins {
			if err := c.checkPlugin(p.Network.Type); err != nil {
				return nil, fmt.Errorf("network %s: %w", d.Name, err)
			}
			if p.Network.IPAM.Type != "" {
				if err := c.checkPlugin(p.Network.IPAM.Type); err != nil {
					return nil, fmt.Errorf("network %s: %w", d.Name, err)
				}
			}
		}
		out = append(out, d)
	}
	if forwardsPorts {
		if err := c.checkPlugin(portmapPlugin); err != nil {
			return nil, fmt.Errorf("--port: %w", err)
		}
	}
	return out, nil
}

func (c Config) checkPlugin(name string) error {
	if _, err := invoke.FindInPath(name, c.PluginPath()); err != nil {
		return fmt.Errorf("CNI plugin %q not found in %s; on Debian install the package %s: %w", name, strings.Join(c.PluginPath(), ":"), PluginPackage, errdefs.ErrNotFound)
	}
	return nil
}

// oneLine folds a multi-line message from a library or plugin.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// withIPAMDataDir returns a plugin configuration whose host-local IPAM
// keeps its leases in dataDir, unless the definition chose a place.
func withIPAMDataDir(raw []byte, dataDir string) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	ipam, ok := m["ipam"].(map[string]any)
	if !ok || ipam["type"] != "host-local" {
		return raw, nil
	}
	if _, set := ipam["dataDir"]; !set {
		ipam["dataDir"] = dataDir
	}
	return json.Marshal(m)
}

// IPAMDataDir is where host-local keeps the leases of a pod's networks
// (unless a definition says where): <data dir>/networks, beside the pods
// directory that holds the pod directory (<data dir>/pods/<state>/<uuid>),
// so each orbit installation counts its own addresses.
func IPAMDataDir(podDir string) string {
	return filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(podDir))), "networks")
}
