package stage0

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// DNSConfig is the pod's name resolution: name servers, search domains,
// resolver options and domain for its resolv.conf, and its hosts entries
// (rkt's --dns, --dns-search, --dns-opt, --dns-domain and --hosts-entry).
type DNSConfig struct {
	// Servers are name server addresses, or the single word "host" (use the
	// host's /etc/resolv.conf) or "none" (stage1 provides none: an app keeps
	// its image's own file, if it has one).
	Servers []string
	Search  []string
	Options []string
	Domain  string
	// Hosts are "IP=HOSTNAME" entries, or the single word "host".
	Hosts []string
}

// DNSErrorKind says what is wrong with a DNSConfig.
type DNSErrorKind int

const (
	// DNSOptionsWithSpecialServer: search domains, options or a domain
	// with the single server "host" or "none" (the Value), which bring
	// their own resolv.conf or none.
	DNSOptionsWithSpecialServer DNSErrorKind = iota + 1
	// DNSSpecialServerNotAlone: "host" or "none" (the Value) among other
	// servers.
	DNSSpecialServerNotAlone
	// DNSHostHostsNotAlone: the hosts entry "host" among other entries.
	DNSHostHostsNotAlone
	// DNSBadServer: a server (the Value) that is not an IP address,
	// "host" or "none".
	DNSBadServer
	// DNSBadHostsEntry: a hosts entry (the Value) that is not IP=HOSTNAME
	// or "host".
	DNSBadHostsEntry
)

// DNSError is a DNSConfig a pod cannot have. It is errdefs.ErrInvalid;
// its text names the settings, and the command line, which knows its own
// flag names, words it for the user from Kind and Value.
type DNSError struct {
	Kind  DNSErrorKind
	Value string
}

func (e *DNSError) Error() string {
	var msg string
	switch e.Kind {
	case DNSOptionsWithSpecialServer:
		msg = fmt.Sprintf("search domains, options and a domain cannot be used with the name server %q", e.Value)
	case DNSSpecialServerNotAlone:
		msg = fmt.Sprintf("name server %q must be the only one", e.Value)
	case DNSHostHostsNotAlone:
		msg = `hosts entry "host" must be the only one`
	case DNSBadServer:
		msg = fmt.Sprintf(`name server %q: not an IP address, "host" or "none"`, e.Value)
	case DNSBadHostsEntry:
		msg = fmt.Sprintf(`hosts entry %q: want IP=HOSTNAME or "host"`, e.Value)
	default:
		msg = fmt.Sprintf("DNS setting %q", e.Value)
	}
	return msg + ": " + errdefs.ErrInvalid.Error()
}

func (e *DNSError) Unwrap() error { return errdefs.ErrInvalid }

// dnsConfMode works out the stage1 --dns-conf-mode argument and the file
// contents stage0 must write ("" for none).
func (d DNSConfig) dnsConfMode() (mode, resolv, hosts string, err error) {
	resolvMode, hostsMode := "default", "default"
	special := len(d.Servers) == 1 && (d.Servers[0] == "host" || d.Servers[0] == "none")
	if special && (len(d.Search) > 0 || len(d.Options) > 0 || d.Domain != "") {
		return "", "", "", &DNSError{Kind: DNSOptionsWithSpecialServer, Value: d.Servers[0]}
	}
	for _, s := range d.Servers {
		if (s == "host" || s == "none") && len(d.Servers) > 1 {
			return "", "", "", &DNSError{Kind: DNSSpecialServerNotAlone, Value: s}
		}
	}
	for _, h := range d.Hosts {
		if h == "host" && len(d.Hosts) > 1 {
			return "", "", "", &DNSError{Kind: DNSHostHostsNotAlone, Value: h}
		}
	}
	switch {
	case len(d.Servers) == 1 && d.Servers[0] == "host":
		resolvMode = "host"
	case len(d.Servers) == 1 && d.Servers[0] == "none":
		resolvMode = "none"
	case len(d.Servers) > 0 || len(d.Search) > 0 || len(d.Options) > 0 || d.Domain != "":
		resolvMode = "stage0"
		var b strings.Builder
		b.WriteString("# written by orbit\n")
		for _, s := range d.Servers {
			if net.ParseIP(s) == nil {
				return "", "", "", &DNSError{Kind: DNSBadServer, Value: s}
			}
			fmt.Fprintf(&b, "nameserver %s\n", s)
		}
		if len(d.Search) > 0 {
			fmt.Fprintf(&b, "search %s\n", strings.Join(d.Search, " "))
		}
		if len(d.Options) > 0 {
			fmt.Fprintf(&b, "options %s\n", strings.Join(d.Options, " "))
		}
		if d.Domain != "" {
			fmt.Fprintf(&b, "domain %s\n", d.Domain)
		}
		resolv = b.String()
	}
	switch {
	case len(d.Hosts) == 1 && d.Hosts[0] == "host":
		hostsMode = "host"
	case len(d.Hosts) > 0:
		hostsMode = "stage0"
		var b strings.Builder
		b.WriteString("127.0.0.1\tlocalhost localhost.localdomain\n::1\tlocalhost ip6-localhost ip6-loopback\n")
		for _, h := range d.Hosts {
			ip, name, ok := strings.Cut(h, "=")
			if !ok || net.ParseIP(ip) == nil || !validHostname(name) {
				return "", "", "", &DNSError{Kind: DNSBadHostsEntry, Value: h}
			}
			fmt.Fprintf(&b, "%s\t%s\n", ip, name)
		}
		hosts = b.String()
	}
	if resolvMode == "default" && hostsMode == "default" {
		return "", "", "", nil
	}
	return fmt.Sprintf("resolv=%s,hosts=%s", resolvMode, hostsMode), resolv, hosts, nil
}

// writeDNSFiles writes the files the DNS mode needs into the (mounted)
// stage1 rootfs and returns the mode for stage1.
func writeDNSFiles(stage1Rootfs string, d DNSConfig) (string, error) {
	mode, resolv, hosts, err := d.dnsConfMode()
	if err != nil {
		return "", err
	}
	for _, f := range []struct{ path, data string }{{contract.Stage1ResolvConf, resolv}, {contract.Stage1Hosts, hosts}} {
		if f.data == "" {
			continue
		}
		path := filepath.Join(stage1Rootfs, f.path)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return "", err
		}
		if err := atomicfile.Replace(path, []byte(f.data), 0o644); err != nil {
			return "", err
		}
	}
	return mode, nil
}

// Validate checks the configuration before a pod is made with it.
func (d DNSConfig) Validate() error {
	_, _, _, err := d.dnsConfMode()
	return err
}

// validHostname checks a name for /etc/hosts: dot-separated labels of
// letters, digits and hyphens.
func validHostname(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
