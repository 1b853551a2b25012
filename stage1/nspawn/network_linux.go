package nspawn

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/network"
	"github.com/orbit-containers/orbit/stage1/pod"
)

// setupNetwork gives the pod the networks --net asks for (rkt's "default"
// when it names none) and returns the path of its network namespace, ""
// for the host's network. DNS servers a network's result carries become
// the pod's resolv.conf when no --dns flag chose one, by turning the DNS
// mode's "resolv=default" into "resolv=stage0" over a file written here.
func setupNetwork(p *pod.Pod, flags *contract.RunOptions) (string, error) {
	var values []string
	if flags.Net != "" {
		values = strings.Split(flags.Net, ",")
	}
	reqs, err := network.ParseRequests(values)
	if err != nil {
		return "", err
	}
	if len(reqs) == 0 {
		reqs = []network.Request{{Name: network.Default}}
	}
	if network.IsHost(reqs) {
		return "", nil
	}
	dir, err := filepath.Abs(p.Dir)
	if err != nil {
		return "", err
	}
	cfg := network.Config{LocalConfig: flags.LocalConfig, ExtraPluginPath: os.Getenv("CNI_PATH")}
	if len(reqs) == 1 && reqs[0].Name == network.None {
		rec, err := cfg.CreateNoneNetNS(dir, p.UUID)
		if err != nil {
			return "", err
		}
		return rec.NetNS, nil
	}
	ports, err := podPorts(p)
	if err != nil {
		return "", err
	}
	rec, err := cfg.Setup(context.Background(), network.Plan{
		Dir: dir, UUID: p.UUID, Requests: reqs, Ports: ports,
		IPAMDataDir: network.IPAMDataDir(dir),
	})
	if err != nil {
		return "", err
	}
	if dns := rec.DNS(); dns != nil {
		if flags.DNSConfMode, err = dnsFromNetwork(p, flags.DNSConfMode, dns); err != nil {
			network.Teardown(context.Background(), dir)
			return "", err
		}
	}
	return rec.NetNS, nil
}

// teardownNetwork undoes the pod's networks once it has ended; gc does it
// instead if this fails or never runs.
func teardownNetwork(p *pod.Pod) {
	if err := network.Teardown(context.Background(), p.Dir); err != nil {
		fmt.Fprintf(os.Stderr, "stage1 nspawn: undoing the pod's networks (gc will try again): %v\n", err)
	}
}

// podPorts are the pod's forwarded ports, each mapped to the port of
// that name an app's image (or the pod manifest's app) declares.
func podPorts(p *pod.Pod) ([]network.PortMapping, error) {
	if len(p.Manifest.Ports) == 0 {
		return nil, nil
	}
	var declared []types.Port
	for i := range p.Manifest.Apps {
		ra := &p.Manifest.Apps[i]
		a := ra.App
		if a == nil {
			im, err := p.ImageManifest(ra.Name)
			if err != nil {
				return nil, err
			}
			a = im.App
		}
		if a != nil {
			declared = append(declared, a.Ports...)
		}
	}
	return network.PortMappings(p.Manifest.Ports, declared)
}

// dnsFromNetwork writes a network's DNS configuration as the pod's
// resolv.conf unless the DNS mode chose one already, and returns the mode.
func dnsFromNetwork(p *pod.Pod, mode string, dns *network.DNS) (string, error) {
	resolv, hosts := "default", "default"
	for _, part := range strings.Split(mode, ",") {
		if k, v, ok := strings.Cut(part, "="); ok && k == "resolv" {
			resolv = v
		} else if ok && k == "hosts" {
			hosts = v
		}
	}
	if resolv != "default" {
		return mode, nil
	}
	var b strings.Builder
	b.WriteString("# written by orbit from the network's DNS configuration\n")
	for _, s := range dns.Nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	if len(dns.Search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(dns.Search, " "))
	}
	if len(dns.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(dns.Options, " "))
	}
	if dns.Domain != "" {
		fmt.Fprintf(&b, "domain %s\n", dns.Domain)
	}
	path := contract.InStage1(p.Dir, contract.Stage1ResolvConf)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	if err := atomicfile.Replace(path, []byte(b.String()), 0o644); err != nil {
		return "", err
	}
	return "resolv=stage0,hosts=" + hosts, nil
}
