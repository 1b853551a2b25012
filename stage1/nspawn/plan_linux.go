package nspawn

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/pod"
	"github.com/orbit-containers/orbit/stage1/supervisor"
	"github.com/orbit-containers/orbit/stage2"
)

// Paths inside the stage1 rootfs, which is the container's root.
const (
	podDataDir       = "/orbit-pod"
	supervisorConfig = podDataDir + "/supervisor.json"
	hostVolumesDir   = podDataDir + "/volumes"
	hostsFallback    = podDataDir + "/hosts"
	hostResolvConf   = podDataDir + "/host-resolv.conf"
	hostHosts        = podDataDir + "/host-hosts"
	// containerNotifySocket is where systemd-nspawn (--notify-ready=yes)
	// puts the socket it relays readiness from.
	containerNotifySocket = "/run/host/notify"
)

// plan is what the container needs: the supervisor's configuration and the
// host paths systemd-nspawn must bind in.
type plan struct {
	config supervisor.Config
	binds  []bind
	// notify: a service manager waits for the pod's readiness (sd_notify).
	notify bool
	// netns is the pod's network namespace ("" for the host's network).
	netns string
	// users is the pod's user namespace range (nil: the host's users).
	users *contract.UserRange
}

type bind struct {
	source, target string
	readOnly       bool
	// idmap maps the pod's user namespace's IDs onto the host's same IDs
	// (see userns_linux.go).
	idmap bool
}

func (b bind) flag() string {
	f := "--bind="
	if b.readOnly {
		f = "--bind-ro="
	}
	f += escapeBind(b.source) + ":" + escapeBind(b.target)
	if b.idmap {
		f += ":idmap"
	}
	return f
}

// escapeBind escapes the colons systemd-nspawn's --bind splits on.
func escapeBind(p string) string { return strings.ReplaceAll(p, ":", `\:`) }

// inContainer turns a host path inside the stage1 rootfs into the path the
// container sees, or reports false.
func inContainer(p *pod.Pod, host string) (string, bool) {
	root := p.Stage1Rootfs()
	if host == root {
		return "/", true
	}
	if rel, ok := strings.CutPrefix(host, root+"/"); ok {
		return "/" + rel, true
	}
	return "", false
}

// planPod works out every app's launch and the binds they need.
func planPod(p *pod.Pod, flags *contract.RunOptions, hostname string) (*plan, error) {
	pl := &plan{notify: os.Getenv("NOTIFY_SOCKET") != "", config: supervisor.Config{
		CgroupParent: ".",
		StatusDir:    contract.Stage1StatusDir,
		Interactive:  flags.Interactive,
	}}
	dnsFiles, hostsGiven, err := planDNS(p, flags, &pl.binds)
	if err != nil {
		return nil, err
	}
	if err := writeHostsFallback(p, hostname); err != nil {
		return nil, err
	}
	hostBinds := map[string]string{}
	if flags.Mutable {
		// Apps added later find every host volume bound in already.
		hostBinds = sandboxHostBinds(p, &pl.binds)
	}
	appNotifies := false
	for i := range p.Manifest.Apps {
		ra := &p.Manifest.Apps[i]
		im, err := p.ImageManifest(ra.Name)
		if err != nil {
			return nil, err
		}
		spec, err := planApp(p, ra, im, flags, dnsFiles, hostsGiven, hostBinds, &pl.binds)
		if err != nil {
			return nil, err
		}
		spec.SocketActivated = pod.SocketActivated(ra, im)
		if pl.notify && pod.SupportsNotify(ra, im) {
			// The app reports readiness itself, through the socket nspawn
			// makes in the container and relays to the service manager.
			spec.App.Env = append(spec.App.Env, "NOTIFY_SOCKET="+containerNotifySocket)
			spec.App.Mounts = append(spec.App.Mounts, stage2.Mount{Source: containerNotifySocket, Target: containerNotifySocket, FSType: "bind", CreateFile: true})
			appNotifies = true
		}
		pl.config.Apps = append(pl.config.Apps, spec)
	}
	// Otherwise the supervisor reports the pod ready once its apps started.
	pl.config.NotifyReady = pl.notify && !appNotifies
	if flags.MDSToken != "" {
		if _, err := contract.ParseMetadataEndpoint(flags.MDSToken); err != nil {
			return nil, err
		}
		pl.config.Metadata = &supervisor.MetadataConfig{Endpoint: flags.MDSToken, Host: metadataHost(flags)}
	}
	return pl, nil
}

// planDNS works out the DNS files every app gets, and the binds of the
// host's own files they need.
func planDNS(p *pod.Pod, flags *contract.RunOptions, binds *[]bind) ([]stage2.Mount, bool, error) {
	dns, err := p.DNSMounts(flags.DNSConfMode)
	if err != nil {
		return nil, false, err
	}
	var dnsFiles []stage2.Mount
	hostsGiven := false
	for _, f := range dns {
		src, ok := inContainer(p, f.Source)
		if !ok {
			// The host's own file: bind it in first.
			src = hostResolvConf
			if f.Target == "/etc/hosts" {
				src = hostHosts
			}
			*binds = append(*binds, bind{source: f.Source, target: src, readOnly: true})
		}
		if f.Target == "/etc/hosts" {
			hostsGiven = true
		}
		dnsFiles = append(dnsFiles, stage2.Mount{Source: src, Target: f.Target, FSType: "bind", ReadOnly: true, CreateFile: true})
	}
	return dnsFiles, hostsGiven, nil
}

// metadataHost is where the apps reach the metadata service: on loopback
// in the host's network; otherwise "", the host side of the pod's own
// network (rkt's default network when --net is not given), which the
// supervisor reads from its routes.
func metadataHost(flags *contract.RunOptions) string {
	if flags.Net == "host" {
		return "127.0.0.1"
	}
	return ""
}

func planApp(p *pod.Pod, ra *schema.RuntimeApp, im *schema.ImageManifest, flags *contract.RunOptions, dnsFiles []stage2.Mount, hostsGiven bool, hostBinds map[string]string, binds *[]bind) (supervisor.AppSpec, error) {
	name := ra.Name.String()
	a := ra.App
	if a == nil {
		a = im.App
	}
	if a == nil {
		return supervisor.AppSpec{}, fmt.Errorf("app %s has nothing to run", name)
	}
	hostRoot := p.AppRoot(ra.Name)
	env := stage2.EnvironmentForUser(hostRoot, name, a.User, a.Environment, nil)
	app := stage2.App{
		Name:              name,
		Root:              contract.Stage1AppRootfs(name),
		Exec:              append([]string(nil), a.Exec...),
		Env:               env,
		WorkingDir:        a.WorkingDirectory,
		User:              a.User,
		Group:             a.Group,
		SupplementaryGIDs: a.SupplementaryGIDs,
		ReadOnlyRootfs:    ra.ReadOnlyRootFS,
		HostnameFile:      flags.Hostname,
		Mounts: []stage2.Mount{
			{Source: "proc", Target: "/proc", FSType: "proc", CreateDir: true},
			{Source: "/sys", Target: "/sys", FSType: "bind", Recursive: true, ReadOnly: true, CreateDir: true},
			{Source: "/dev", Target: "/dev", FSType: "bind", Recursive: true, CreateDir: true},
		},
	}
	vols, err := p.AppMounts(ra, im)
	if err != nil {
		return supervisor.AppSpec{}, err
	}
	for _, v := range vols {
		src, ok := inContainer(p, v.Source)
		if !ok {
			if t, done := hostBinds[v.Source]; done {
				src = t
			} else {
				src = filepath.Join(hostVolumesDir, v.Volume.Name.String())
				hostBinds[v.Source] = src
				*binds = append(*binds, bind{source: v.Source, target: src})
			}
		}
		app.Mounts = append(app.Mounts, stage2.Mount{Source: src, Target: v.Target, FSType: "bind", Recursive: v.Recursive, ReadOnly: v.ReadOnly, CreateDir: true})
		if v.Target == "/etc/hosts" {
			hostsGiven = true // a volume there is the app's /etc/hosts, as in rkt
		}
	}
	app.Mounts = append(app.Mounts, dnsFiles...)
	if !hostsGiven {
		if _, err := os.Lstat(filepath.Join(hostRoot, "etc", "hosts")); err != nil {
			app.Mounts = append(app.Mounts, stage2.Mount{Source: hostsFallback, Target: "/etc/hosts", FSType: "bind", ReadOnly: true, CreateFile: true})
		}
	}
	limits, err := pod.ApplyIsolators(&app, a.Isolators, pod.SecurityOf(flags))
	if err != nil {
		return supervisor.AppSpec{}, err
	}
	spec := supervisor.AppSpec{App: app, Limits: limits}
	for _, h := range a.EventHandlers {
		switch h.Name {
		case "pre-start":
			spec.PreStart = append(spec.PreStart, append([]string(nil), h.Exec...))
		case "post-stop":
			spec.PostStop = append(spec.PostStop, append([]string(nil), h.Exec...))
		}
	}
	if err := writeEnv(p, ra.Name, env); err != nil {
		return supervisor.AppSpec{}, err
	}
	return spec, nil
}

// writeHostsFallback writes the /etc/hosts given to apps whose image has
// none: localhost and the pod's host name.
func writeHostsFallback(p *pod.Pod, hostname string) error {
	content := fmt.Sprintf("127.0.0.1\tlocalhost localhost.localdomain %[1]s\n::1\tlocalhost ip6-localhost ip6-loopback %[1]s\n", hostname)
	path := filepath.Join(p.Stage1Rootfs(), podDataDir, "hosts")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

// writeEnv records the app's environment in rkt's place
// (contract.Stage1EnvDir/<app>),
// one NAME=VALUE per line, for tools that inspect pods.
func writeEnv(p *pod.Pod, app types.ACName, env []string) error {
	path := filepath.Join(contract.InStage1(p.Dir, contract.Stage1EnvDir), app.String())
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(strings.Join(env, "\n")+"\n"), 0o644)
}
