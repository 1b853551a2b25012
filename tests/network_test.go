package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The network tests run orbit inside network namespaces they make (see
// tests/README.md): every veth, route, address lease and firewall rule a
// pod gets lives and dies there. A second namespace, "outside", is joined
// to the test's by a veth pair and knows no route to the pods' subnets, so
// only masquerading lets a pod reach it.

const (
	networkTestAddr    = "10.99.0.1" // the test namespace's end of the veth
	networkOutsideAddr = "10.99.0.2" // the outside namespace's end
)

// networkNS makes a network namespace with its loopback up, removed when
// the test ends (after the env made later is torn down inside it).
func networkNS(t testing.TB, tag string) string {
	t.Helper()
	requireTool(t, "ip", "iproute2")
	requireTool(t, "nsenter", "util-linux")
	name := fmt.Sprintf("orbit-net-%s-%d-%d", tag, os.Getpid(), time.Now().UnixNano()%1e6)
	mustCmd(t, "ip", "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	mustCmd(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// networkEnv is an orbit installation whose commands run in a namespace of
// the test's own, with the plugins and iptables they need.
func networkEnv(t testing.TB) (*env, string) {
	t.Helper()
	require(t, networkHasPlugins(), "the CNI plugins in /usr/lib/cni (Debian package containernetworking-plugins) are needed")
	requireTool(t, "iptables", "iptables")
	requireTool(t, "systemd-nspawn", "systemd-container")
	ns := networkNS(t, "pod")
	e := newEnv(t)
	e.NetNS = ns
	return e, ns
}

func networkHasPlugins() bool {
	for _, p := range []string{"ptp", "bridge", "host-local", "portmap"} {
		if _, err := os.Stat(filepath.Join("/usr/lib/cni", p)); err != nil {
			return false
		}
	}
	return true
}

// networkOutside makes the outside namespace, joined to ns by a veth pair.
func networkOutside(t testing.TB, ns string) string {
	t.Helper()
	out := networkNS(t, "out")
	veth := fmt.Sprintf("ov%d", time.Now().UnixNano()%1e6)
	mustCmd(t, "ip", "-n", ns, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", out)
	mustCmd(t, "ip", "-n", ns, "addr", "add", networkTestAddr+"/24", "dev", veth)
	mustCmd(t, "ip", "-n", ns, "link", "set", veth, "up")
	mustCmd(t, "ip", "-n", out, "addr", "add", networkOutsideAddr+"/24", "dev", "eth0")
	mustCmd(t, "ip", "-n", out, "link", "set", "eth0", "up")
	return out
}

// networkInNS runs f on a thread that has entered namespace ns, and then
// takes the thread back to the test's namespace.
func networkInNS[T any](t testing.TB, ns string, f func() (T, error)) (T, error) {
	type res struct {
		v   T
		err error
	}
	done := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		var zero T
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			done <- res{zero, err}
			return
		}
		defer orig.Close()
		defer func() {
			// Back home, the thread may be reused (it may be the main
			// thread, which Go never ends); else it stays locked and Go
			// discards it.
			if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
				runtime.UnlockOSThread()
			}
		}()
		target, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			done <- res{zero, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- res{zero, err}
			return
		}
		v, err := f()
		done <- res{v, err}
	}()
	r := <-done
	return r.v, r.err
}

// networkServe serves text on addr inside ns until the test ends, and
// returns the address it listens on.
func networkServe(t testing.TB, ns, addr, text string) string {
	t.Helper()
	l, err := networkInNS(t, ns, func() (net.Listener, error) { return net.Listen("tcp", addr) })
	if err != nil {
		t.Fatalf("listening in %s: %v", ns, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, text) })}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// networkGet fetches url from inside ns with Go's HTTP client.
func networkGet(t testing.TB, ns, url string) (string, error) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return networkInNS(t, ns, func() (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, network, addr)
			})
		},
	}}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// networkACI is a busybox image with the network applets, declaring the
// port "http" (80/tcp), whose app runs script, in which a shell function
// "get HOST PORT" prints what an HTTP server answers.
func networkACI(t testing.TB, name, script string) string {
	t.Helper()
	root := busyboxRootfs(t)
	for _, applet := range []string{"nc", "httpd", "ip", "ifconfig", "route", "printf", "cut"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "srv/index.html"), "hello from the pod\n")
	// get HOST PORT prints the body of GET / (busybox-static's wget
	// crashes in a static build's resolver; nc does not resolve).
	get := `get() { printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 "$1" "$2" | tail -n 1; }; `
	m := imageManifest(name, "/bin/sh", "-c", get+script)
	m["app"].(map[string]any)["ports"] = []map[string]any{{"name": "http", "protocol": "tcp", "port": 80}}
	return writeACI(t, filepath.Join(t.TempDir(), strings.ReplaceAll(name, "/", "_")+".aci"), root, m)
}

// networkStart starts `orbit run` in the background and returns the pod's
// UUID once its networks are up (its net-info.json written).
func networkStart(t testing.TB, e *env, args ...string) string {
	t.Helper()
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	cmd := e.command(append([]string{"run", "--insecure-options=image", "--uuid-file-save=" + uuidFile}, args...)...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			t.Fatalf("orbit run ended early: %s", out.String())
		default:
		}
		if data, err := os.ReadFile(uuidFile); err == nil && len(data) > 0 {
			uuid := strings.TrimSpace(string(data))
			if _, err := os.Stat(filepath.Join(e.Dir, "pods", "run", uuid, "net-info.json")); err == nil {
				// The pod's app starts right after; give it a moment.
				time.Sleep(500 * time.Millisecond)
				return uuid
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("the pod's networks were not set up in time: %s", out.String())
	return ""
}

// networkPodIP is the address of a pod on its first network, from `orbit
// list --format=json`.
func networkPodIP(t testing.TB, e *env, uuid string) string {
	t.Helper()
	var pods []struct {
		Name     string `json:"name"`
		Networks []struct {
			NetName string `json:"netName"`
			IfName  string `json:"ifName"`
			IP      string `json:"ip"`
			HostIP  string `json:"hostIP"`
		} `json:"networks"`
	}
	r := e.mustRun("list", "--format=json")
	if err := json.Unmarshal([]byte(r.Stdout), &pods); err != nil {
		t.Fatalf("list --format=json: %v\n%s", err, r.Stdout)
	}
	for _, p := range pods {
		if p.Name == uuid && len(p.Networks) > 0 {
			if p.Networks[0].IfName != "eth0" {
				t.Fatalf("first interface %q, want rkt's eth0", p.Networks[0].IfName)
			}
			return p.Networks[0].IP
		}
	}
	t.Fatalf("pod %s shows no network: %s", uuid, r.Stdout)
	return ""
}

// networkState is what pods leave in a namespace: links, firewall rules.
type networkState struct {
	Links, IPTables, NFT []string
}

func networkSnapshot(t testing.TB, ns string) networkState {
	t.Helper()
	lines := func(name string, args ...string) []string {
		out, err := exec.Command("nsenter", append([]string{"--net=/run/netns/" + ns, name}, args...)...).Output()
		if err != nil {
			t.Fatalf("%s %v in %s: %v", name, args, ns, err)
		}
		var keep []string
		chain := ""
		for _, l := range strings.Split(string(out), "\n") {
			l = strings.TrimSpace(l)
			switch {
			case name == "ip" && strings.Contains(l, ": <"):
				f := strings.Fields(l)
				keep = append(keep, strings.SplitN(f[1], "@", 2)[0])
			case name == "iptables-save" && (strings.HasPrefix(l, "-A") || strings.HasPrefix(l, ":")) && !networkShared(l):
				if strings.HasPrefix(l, ":") && !strings.HasPrefix(l, ":CNI") {
					continue // a built-in chain
				}
				keep = append(keep, l)
			case name == "nft" && strings.HasPrefix(l, "chain "):
				chain = strings.Fields(l)[1]
			case name == "nft" && l != "" && !strings.HasPrefix(l, "table") && !strings.HasPrefix(l, "type") && l != "}" && !networkShared(chain+" "+l):
				keep = append(keep, chain+": "+l)
			}
		}
		sort.Strings(keep)
		return keep
	}
	st := networkState{Links: lines("ip", "-o", "link")}
	st.IPTables = lines("iptables-save")
	if _, err := exec.LookPath("nft"); err == nil {
		st.NFT = lines("nft", "list", "ruleset")
	}
	return st
}

// networkShared reports whether a firewall rule or chain is one of the
// portmap plugin's shared chains (CNI-HOSTPORT-*) or a jump into one:
// the plugin makes them once for every pod of every network and never
// removes them; what a pod adds lives in chains of its own (CNI-DN-...),
// which must go with it.
func networkShared(rule string) bool {
	return strings.Contains(rule, "CNI-HOSTPORT-")
}

// networkNoLeaks fails the test when the namespace holds links or rules it
// did not hold before, an address lease is left, or a network namespace
// is still mounted below the env's data directory.
func networkNoLeaks(t testing.TB, e *env, ns string, before networkState) {
	t.Helper()
	after := networkSnapshot(t, ns)
	if strings.Join(after.Links, " ") != strings.Join(before.Links, " ") {
		t.Errorf("links left: before %v, after %v", before.Links, after.Links)
	}
	if strings.Join(after.IPTables, "\n") != strings.Join(before.IPTables, "\n") {
		t.Errorf("iptables rules left:\n%s", strings.Join(after.IPTables, "\n"))
	}
	if strings.Join(after.NFT, "\n") != strings.Join(before.NFT, "\n") {
		t.Errorf("nftables rules left:\n%s", strings.Join(after.NFT, "\n"))
	}
	leases, _ := filepath.Glob(filepath.Join(e.Dir, "networks", "*", "*"))
	for _, l := range leases {
		if net.ParseIP(filepath.Base(l)) != nil {
			t.Errorf("address lease left: %s", l)
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], e.Dir+"/") {
			t.Errorf("still mounted: %s", f[4])
		}
	}
}

// networkOneLine fails unless r failed with one line naming every fragment.
func networkOneLine(t testing.TB, r result, fragments ...string) {
	t.Helper()
	if r.Code == 0 {
		t.Fatalf("accepted: %s", r)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(r.Stderr), "\n") {
		if !strings.Contains(l, "warning: signature verification has been disabled") && l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("want one error line: %s", r)
	}
	for _, f := range fragments {
		if !strings.Contains(lines[0], f) {
			t.Fatalf("error %q does not name %q", lines[0], f)
		}
	}
}

// TestNetworkDefault: with no --net a pod is on rkt's default network; it
// reaches the host, another pod, a forwarded port, and (masqueraded) the
// outside; the host and the outside reach it and its forwarded port; list
// and status show its address; nothing is left once it is collected.
func TestNetworkDefault(t *testing.T) {
	e, ns := networkEnv(t)
	out := networkOutside(t, ns)
	before := networkSnapshot(t, ns)
	hostSrv := networkServe(t, ns, "0.0.0.0:0", "hello from the host\n")
	_, hostPort, _ := net.SplitHostPort(hostSrv)
	outSrv := networkServe(t, out, networkOutsideAddr+":0", "hello from outside\n")

	server := networkACI(t, "example.com/server", "exec httpd -f -p 80 -h /srv")
	uuid := networkStart(t, e, "--port=http:8080", server)
	ip := networkPodIP(t, e, uuid)
	if !strings.HasPrefix(ip, "172.16.28.") {
		t.Fatalf("pod address %s is not in rkt's default subnet 172.16.28.0/24", ip)
	}
	r := e.mustRun("list", "--no-legend")
	if !strings.Contains(r.Stdout, "default:ip4="+ip) {
		t.Errorf("list does not show default:ip4=%s:\n%s", ip, r.Stdout)
	}
	r = e.mustRun("status", uuid)
	if !strings.Contains(r.Stdout, "networks=default:ip4="+ip+"\n") {
		t.Errorf("status does not show networks=default:ip4=%s:\n%s", ip, r.Stdout)
	}
	// Host to pod, and the forwarded port from the host and the outside.
	for _, c := range []struct{ ns, url string }{
		{ns, "http://" + ip + ":80/"},
		{ns, "http://" + networkTestAddr + ":8080/"},
		{out, "http://" + networkTestAddr + ":8080/"},
	} {
		body, err := networkGet(t, c.ns, c.url)
		if err != nil || body != "hello from the pod\n" {
			t.Errorf("GET %s from %s: %q, %v", c.url, c.ns, body, err)
		}
	}
	// From a second pod: the host, the first pod, its forwarded port, and
	// the outside.
	client := networkACI(t, "example.com/client", strings.Join([]string{
		"get 172.16.28.1 " + hostPort,
		"get " + ip + " 80",
		"get 172.16.28.1 8080",
		"get " + networkOutsideAddr + " " + strings.Split(outSrv, ":")[1],
		"ip route | grep -q '^default via 172.16.28.1' && echo default route",
	}, "; "))
	r = e.run("run", "--insecure-options=image", client)
	want := "hello from the host\nhello from the pod\nhello from the pod\nhello from outside\ndefault route\n"
	if r.Code != 0 || !strings.Contains(r.Stdout, want) {
		t.Errorf("client pod: want %q in its output: %s", want, r)
	}
	e.mustRun("stop", uuid)
	e.mustRun("status", "--wait=30s", uuid)
	e.mustRun("gc", "--grace-period=0s")
	networkNoLeaks(t, e, ns, before)
}

// TestNetworkRestricted: a pod on default-restricted reaches the host but
// has no way out, even to where a pod on default gets masqueraded.
func TestNetworkRestricted(t *testing.T) {
	e, ns := networkEnv(t)
	out := networkOutside(t, ns)
	before := networkSnapshot(t, ns)
	hostSrv := networkServe(t, ns, "0.0.0.0:0", "hello from the host\n")
	outSrv := networkServe(t, out, networkOutsideAddr+":0", "hello from outside\n")
	_, hostPort, _ := net.SplitHostPort(hostSrv)
	_, outPort, _ := net.SplitHostPort(outSrv)
	aci := networkACI(t, "example.com/restricted", strings.Join([]string{
		"ip -4 addr show eth0 | grep -o 'inet 172\\.17\\.[0-9.]*'",
		"get 172.17.0.1 " + hostPort,
		"ip route | grep -q '^default' && echo HAS-DEFAULT-ROUTE",
		"get " + networkOutsideAddr + " " + outPort + " | grep -q outside || echo outside unreachable",
	}, "; "))
	r := e.run("run", "--insecure-options=image", "--net=default-restricted", aci)
	if !strings.Contains(r.Stdout, "inet 172.17.") || !strings.Contains(r.Stdout, "hello from the host\n") {
		t.Errorf("restricted pod did not get its address or reach the host: %s", r)
	}
	if strings.Contains(r.Stdout, "HAS-DEFAULT-ROUTE") || strings.Contains(r.Stdout, "hello from outside") || !strings.Contains(r.Stdout, "outside unreachable") {
		t.Errorf("restricted pod reached beyond the host: %s", r)
	}
	e.mustRun("gc", "--grace-period=0s")
	networkNoLeaks(t, e, ns, before)
}

// TestNetworkNone: --net=none gives the pod its own namespace with only
// loopback.
func TestNetworkNone(t *testing.T) {
	e, ns := networkEnv(t)
	before := networkSnapshot(t, ns)
	aci := networkACI(t, "example.com/none", "ip -o link | cut -d: -f2 | tr -d ' ' | tr '\\n' ,; echo; ip -o addr show lo | grep -c 127.0.0.1")
	r := e.mustRun("run", "--insecure-options=image", "--net=none", aci)
	if !strings.Contains(r.Stdout, "lo,\n1\n") {
		t.Errorf("want only an up loopback: %s", r)
	}
	e.mustRun("gc", "--grace-period=0s")
	networkNoLeaks(t, e, ns, before)
}

// TestNetworkNetD: a bridge network defined in <local-config>/net.d, with
// CNI_ARGS choosing the address, and the DNS servers of its result in the
// pod's resolv.conf (unless --dns says otherwise).
func TestNetworkNetD(t *testing.T) {
	e, ns := networkEnv(t)
	before := networkSnapshot(t, ns)
	writeFile(t, filepath.Join(e.LocalCfg, "net.d", "10-mybridge.conf"), `{
	"cniVersion": "1.0.0", "name": "mybridge", "type": "bridge", "bridge": "orbitbr0",
	"isGateway": true, "ipMasq": true,
	"ipam": {"type": "host-local", "subnet": "10.88.0.0/24"},
	"dns": {"nameservers": ["10.88.0.53"], "search": ["pods.example"]}
}`)
	aci := networkACI(t, "example.com/bridged", "ip -4 addr show eth0 | grep -o 'inet [0-9.]*'; cat /etc/resolv.conf")
	r := e.mustRun("run", "--insecure-options=image", "--net=mybridge:IP=10.88.0.42", aci)
	if !strings.Contains(r.Stdout, "inet 10.88.0.42") {
		t.Errorf("CNI_ARGS IP=10.88.0.42 not honoured: %s", r)
	}
	if !strings.Contains(r.Stdout, "nameserver 10.88.0.53") || !strings.Contains(r.Stdout, "search pods.example") {
		t.Errorf("the network's DNS is not the pod's resolv.conf: %s", r)
	}
	// --dns=host wins over the network's DNS.
	host, err := os.ReadFile("/etc/resolv.conf")
	require(t, err == nil, "the host's /etc/resolv.conf")
	r = e.mustRun("run", "--insecure-options=image", "--net=mybridge", "--dns=host", aci)
	if strings.Contains(r.Stdout, "10.88.0.53") || !strings.Contains(r.Stdout, strings.TrimSpace(string(host))) {
		t.Errorf("--dns=host: want the host's resolv.conf: %s", r)
	}
	e.mustRun("gc", "--grace-period=0s")
	// The bridge itself is the network's, not a pod's: it stays, as with
	// every CNI runtime.
	mustCmd(t, "ip", "-n", ns, "link", "del", "orbitbr0")
	networkNoLeaks(t, e, ns, before)
}

// TestNetworkBadInput: each mistake is one line, and nothing is fetched,
// made or configured.
func TestNetworkBadInput(t *testing.T) {
	e, ns := networkEnv(t)
	before := networkSnapshot(t, ns)
	aci := networkACI(t, "example.com/bad", "true")
	run := func(args ...string) result {
		return e.run(append([]string{"run", "--insecure-options=image"}, args...)...)
	}
	noPods := func() {
		t.Helper()
		if r := e.mustRun("list", "--no-legend"); strings.TrimSpace(r.Stdout) != "" {
			t.Fatalf("a refused run left pods:\n%s", r.Stdout)
		}
	}
	networkOneLine(t, run("--net=nosuchnet", aci), "nosuchnet", "not found")
	networkOneLine(t, run("--net=host,default", aci), "host")
	networkOneLine(t, run("--stage1-name=fly", "--net=default", aci), "fly", "host")
	noPods()

	writeFile(t, filepath.Join(e.LocalCfg, "net.d", "20-broken.conf"), `{"name": "broken", "type": `)
	networkOneLine(t, run(aci), "20-broken.conf", "invalid")
	os.Remove(filepath.Join(e.LocalCfg, "net.d", "20-broken.conf"))
	writeFile(t, filepath.Join(e.LocalCfg, "net.d", "30-noplugin.conf"), `{"cniVersion": "1.0.0", "name": "noplugin", "type": "nosuchplugin"}`)
	networkOneLine(t, run("--net=noplugin", aci), "nosuchplugin", "containernetworking-plugins")
	noPods()

	networkOneLine(t, run("--port=nosuchport:8081", aci), "nosuchport")
	noPods()
	taken := networkServe(t, ns, "0.0.0.0:0", "busy")
	_, port, _ := net.SplitHostPort(taken)
	networkOneLine(t, run("--port=http:"+port, aci), port, "in use")
	noPods()

	// An exhausted subnet: a /30 has one address for a pod.
	writeFile(t, filepath.Join(e.LocalCfg, "net.d", "40-tiny.conf"), `{"cniVersion": "1.0.0", "name": "tiny", "type": "ptp",
	"ipam": {"type": "host-local", "subnet": "10.77.0.0/30"}}`)
	sleeper := networkACI(t, "example.com/sleeper", "exec sleep 600")
	uuid := networkStart(t, e, "--net=tiny", sleeper)
	mid := networkSnapshot(t, ns)
	r := run("--net=tiny", aci)
	networkOneLine(t, r, "tiny", "no IP addresses available")
	if after := networkSnapshot(t, ns); strings.Join(after.Links, " ") != strings.Join(mid.Links, " ") {
		t.Errorf("the failed pod left links: %v, before %v", after.Links, mid.Links)
	}
	e.mustRun("stop", "--force", uuid)
	e.mustRun("status", "--wait=30s", uuid)
	e.mustRun("gc", "--grace-period=0s")
	networkNoLeaks(t, e, ns, before)
}

// TestNetworkGCAfterSIGKILL: every process of a running pod is killed with
// SIGKILL, the run entrypoint and systemd-nspawn included; gc still undoes
// its networks, and a second gc finds nothing to do.
func TestNetworkGCAfterSIGKILL(t *testing.T) {
	e, ns := networkEnv(t)
	before := networkSnapshot(t, ns)
	aci := networkACI(t, "example.com/killed", "exec httpd -f -p 80 -h /srv")
	uuid := networkStart(t, e, "--port=http:8082", aci)
	podDir := filepath.Join(e.Dir, "pods", "run", uuid)
	if data, err := os.ReadFile(filepath.Join(podDir, "network.json")); err != nil || !strings.Contains(string(data), `"result"`) {
		t.Fatalf("no network record with results: %s, %v", data, err)
	}
	networkKillPod(t, podDir)
	e.mustRun("gc", "--grace-period=0s")
	e.mustRun("gc", "--grace-period=0s")
	if _, err := os.Stat(podDir); err == nil {
		t.Fatalf("pod %s not collected", uuid)
	}
	networkNoLeaks(t, e, ns, before)
}

// networkKillPod SIGKILLs everything of a pod: what its cgroups hold and
// systemd-nspawn, and the `orbit run` process (stage1) that waits for it.
func networkKillPod(t testing.TB, podDir string) {
	t.Helper()
	var pids []int
	if data, err := os.ReadFile(filepath.Join(podDir, "nspawn.pid")); err == nil {
		var pid int
		fmt.Sscan(string(data), &pid)
		if ppid := networkPPid(pid); ppid > 1 {
			pids = append(pids, ppid) // the run entrypoint
		}
		pids = append(pids, pid)
	}
	data, _ := os.ReadFile(filepath.Join(podDir, "cgroups"))
	for _, dir := range strings.Fields(string(data)) {
		filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Name() == "cgroup.procs" {
				procs, _ := os.ReadFile(p)
				for _, f := range strings.Fields(string(procs)) {
					var pid int
					fmt.Sscan(f, &pid)
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	for _, pid := range pids {
		unix.Kill(pid, unix.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for unix.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func networkPPid(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	var ppid int
	if len(f) > 1 {
		fmt.Sscan(f[1], &ppid)
	}
	return ppid
}

// TestNetworkParallel: 20 pods on the default network at once, then gc:
// no veth, namespace mount, firewall rule or address lease is left.
func TestNetworkParallel(t *testing.T) {
	e, ns := networkEnv(t)
	before := networkSnapshot(t, ns)
	aci := networkACI(t, "example.com/many", "true")
	// Stored once, so the pods do not all import it.
	e.mustRun("fetch", "--insecure-options=image", aci)
	const n = 20
	results := make(chan result, n)
	for i := 0; i < n; i++ {
		go func() { results <- e.run("run", "--insecure-options=image", "--pull-policy=never", "example.com/many") }()
	}
	for i := 0; i < n; i++ {
		if r := <-results; r.Code != 0 {
			t.Errorf("pod %d: %s", i, r)
		}
	}
	e.mustRun("gc", "--grace-period=0s")
	networkNoLeaks(t, e, ns, before)
}
