package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/orbit-containers/orbit/fetch"
	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/insecure"
	"github.com/orbit-containers/orbit/stage0"
	"github.com/orbit-containers/orbit/stage1/builtin"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/network"
	"github.com/orbit-containers/orbit/store"
)

// podFlags are what `orbit run` and `orbit prepare` share: how the pod is
// made.
type podFlags struct {
	stage1             stage1Flags
	pullPolicy         string
	uuidFileSave       string
	volumes            []string
	inheritEnv         bool
	setEnvFiles        []string
	podManifest        string
	noOverlay          bool
	trustKeysFromHTTPS bool
	ports              []string
	storeOnly, noStore bool // rkt's deprecated --pull-policy spellings
	privateUsers       bool
	app                appFlags // pod-wide defaults for every app
	// hostNetwork: the pod will share the host's network, where --port
	// forwards nothing; forwardPorts: it will not, and --port names must
	// be declared by its apps. prepare knows neither yet (stage1 checks
	// the names when the pod runs).
	hostNetwork, forwardPorts bool
}

func (p *podFlags) addFlags(fs *pflag.FlagSet, defaultPolicy string) {
	p.stage1.addFlags(fs)
	fs.StringVar(&p.pullPolicy, "pull-policy", defaultPolicy, "when to fetch images: never, new (only if not in the store) or update (always check)")
	fs.StringVar(&p.uuidFileSave, "uuid-file-save", "", "write the pod's UUID to this file")
	fs.StringArrayVar(&p.volumes, "volume", nil, "a volume: NAME,kind=host,source=PATH[,readOnly=true][,recursive=true] or NAME,kind=empty[,mode=0755,uid=0,gid=0]")
	fs.BoolVar(&p.inheritEnv, "inherit-env", false, "give the apps orbit's own environment")
	fs.StringArrayVar(&p.setEnvFiles, "set-env-file", nil, "a file of NAME=VALUE lines to set in the apps' environment")
	fs.StringVar(&p.podManifest, "pod-manifest", "", "run the apps of this appc pod manifest instead of images from the command line")
	fs.BoolVar(&p.noOverlay, "no-overlay", false, "copy the images' root filesystems into the pod instead of using overlayfs")
	fs.BoolVar(&p.trustKeysFromHTTPS, "trust-keys-from-https", false, "trust keys discovered over HTTPS on first use")
	fs.StringArrayVar(&p.ports, "port", nil, "forward a host port to the port NAME an app's image declares: NAME:[HOSTIP:]HOSTPORT (not with --net=host)")
	fs.BoolVar(&p.privateUsers, "private-users", false, "run the pod in a user namespace: its root is an unprivileged range of host user IDs (nspawn flavour)")
	fs.BoolVar(&p.storeOnly, "store-only", false, "")
	fs.BoolVar(&p.noStore, "no-store", false, "")
	fs.MarkDeprecated("store-only", "use --pull-policy=never")
	fs.MarkDeprecated("no-store", "use --pull-policy=update")
	addAppFlags(fs, &p.app)
}

// preparePod fetches the images, creates a pod and prepares it. The pod is
// returned locked, in the prepare state. Everything that can be checked
// without the images is checked before anything is fetched.
func preparePod(ctx context.Context, g *globalOptions, cmd *cobra.Command, pf *podFlags, args []string) (*stage0.Pod, error) {
	pf.app.recordSet(cmd.Flags())
	if err := pf.app.checkPodWide(); err != nil {
		return nil, err
	}
	if err := pf.app.validate(); err != nil {
		return nil, err
	}
	policy, err := pullPolicy(pf.pullPolicy, pf.storeOnly, pf.noStore)
	if err != nil {
		return nil, err
	}
	if err := pf.stage1.check(); err != nil {
		return nil, err
	}
	flavour := pf.stage1.flavour()
	if pf.privateUsers && flavour != 0 && flavour != builtin.Nspawn {
		return nil, fmt.Errorf("--private-users: the %s flavour cannot run a pod in a user namespace; the nspawn flavour can: %w", flavour, errdefs.ErrInvalid)
	}
	if pf.privateUsers {
		if err := stage0.CheckUserNamespaces(); err != nil {
			return nil, fmt.Errorf("--private-users: %w", err)
		}
	}
	var apps []appArg
	var pm *schema.PodManifest
	var spec stage0.PodSpec
	if pf.podManifest != "" {
		if len(args) > 0 {
			return nil, fmt.Errorf("--pod-manifest and images on the command line cannot be used together: %w", errdefs.ErrInvalid)
		}
		// As rkt: what the manifest describes is not also taken from flags.
		for _, name := range []string{"inherit-env", "set-env", "set-env-file", "environment", "volume", "mount", "port"} {
			if f := cmd.Flags().Lookup(name); f != nil && f.Changed {
				return nil, fmt.Errorf("--%s conflicts with --pod-manifest, which describes the whole pod: %w", name, errdefs.ErrInvalid)
			}
		}
		if pm, err = loadPodManifest(pf.podManifest); err != nil {
			return nil, err
		}
		if err := stage0.ValidatePodManifest(pm, flavour); err != nil {
			return nil, fmt.Errorf("--pod-manifest %s: %w", pf.podManifest, err)
		}
	} else {
		if len(args) == 0 {
			return nil, usageErr(cmd, commandName(cmd)+" needs an IMAGE")
		}
		if apps, err = parseAppArgs(args, pf.app); err != nil {
			var mf *misplacedFlagError
			if errors.As(err, &mf) {
				return nil, misplacedFlag(cmd, mf)
			}
			return nil, err
		}
		if flavour == builtin.Fly && len(apps) > 1 {
			return nil, fmt.Errorf("the fly flavour runs exactly one app; %d images given: %w", len(apps), errdefs.ErrInvalid)
		}
		if spec, err = pf.podSpec(apps); err != nil {
			return nil, err
		}
	}
	st, err := g.openStore()
	if err != nil {
		return nil, err
	}
	// Every image looked up from here on stays leased, out of reach of
	// `image gc` and `image rm`, until the pod records the trees made
	// from it (or preparing fails).
	st, leases := st.Leasing()
	defer leases.Release()
	f, err := g.newFetcher(st, pf.trustKeysFromHTTPS)
	if err != nil {
		return nil, err
	}
	trees := newStoreTrees(st)
	cfg := stage0.PrepareConfig{Trees: trees, UseOverlay: !pf.noOverlay, PrivateUsers: pf.privateUsers, Log: g.Log}
	if pm != nil {
		if err := fetchPodManifestImages(ctx, pm, f, st, policy); err != nil {
			return nil, err
		}
		cfg.PodManifest = pm
		// An app the pod manifest leaves to its image needs one that says
		// what to run; stage1 would have nothing to start.
		for _, ra := range pm.Apps {
			if ra.App != nil {
				continue
			}
			im, err := trees.Manifest(ra.Image.ID.String())
			if err != nil {
				return nil, fmt.Errorf("--pod-manifest: app %s: %w", ra.Name, err)
			}
			if err := stage0.CheckAppImage(im); err != nil {
				return nil, fmt.Errorf("--pod-manifest: app %s: %w", ra.Name, err)
			}
			if im.App == nil {
				return nil, fmt.Errorf("--pod-manifest: app %s: neither the pod manifest nor its image says what to run: %w", ra.Name, errdefs.ErrInvalid)
			}
		}
	} else {
		baseEnv, err := pf.baseEnv()
		if err != nil {
			return nil, err
		}
		for i, a := range apps {
			id, err := fetchImage(ctx, f, st, a.image, policy, a.flags.signature)
			if err != nil {
				return nil, err
			}
			spec.Apps[i].ImageID = id
			spec.Apps[i].InheritedEnv = baseEnv
			if im, err := trees.Manifest(id); err == nil {
				if err := stage0.CheckAppImage(im); err != nil {
					return nil, err
				}
			}
		}
		if pf.forwardPorts {
			if err := checkDeclaredPorts(trees, spec); err != nil {
				return nil, err
			}
		}
		if len(pf.ports) > 0 && pf.hostNetwork {
			g.Log.Warn("the pod shares the host's network: --port forwards nothing, the apps' ports are the host's")
		}
		cfg.Spec = spec
	}
	cfg.Stage1ImageID, cfg.Stage1Flavour, err = pf.stage1.resolve(ctx, g, st, f)
	if err != nil {
		return nil, err
	}
	p, err := stage0.NewPod(g.podsDir())
	if err != nil {
		return nil, err
	}
	if err := stage0.Prepare(ctx, p, cfg); err != nil {
		p.Close()
		discardPod(g, p)
		return nil, err
	}
	trees.touchUsed(g.Log)
	if pf.uuidFileSave != "" {
		if err := os.WriteFile(pf.uuidFileSave, []byte(p.UUID), 0o644); err != nil {
			p.Close()
			discardPod(g, p)
			return nil, fmt.Errorf("--uuid-file-save: %w", err)
		}
	}
	return p, nil
}

// podSpec reads the command line's apps, ports and volumes into a pod
// spec whose apps have no image ID yet. Every --mount must name a --volume.
func (pf *podFlags) podSpec(apps []appArg) (stage0.PodSpec, error) {
	var spec stage0.PodSpec
	for _, v := range pf.ports {
		port, err := parsePortFlag(v)
		if err != nil {
			return spec, err
		}
		spec.Ports = append(spec.Ports, port)
	}
	volumes := map[types.ACName]bool{}
	for _, v := range pf.volumes {
		vol, err := types.VolumeFromString(v)
		if err != nil {
			return spec, fmt.Errorf("--volume %q: %w: %w", v, err, errdefs.ErrInvalid)
		}
		volumes[vol.Name] = true
		spec.Volumes = append(spec.Volumes, *vol)
	}
	for _, a := range apps {
		as, err := a.appSpec("")
		if err != nil {
			return spec, fmt.Errorf("image %s: %w", a.image, err)
		}
		for _, m := range as.Mounts {
			if !volumes[m.Volume] {
				return spec, fmt.Errorf("image %s: --mount names volume %q, which no --volume defines: %w", a.image, m.Volume, errdefs.ErrInvalid)
			}
		}
		spec.Apps = append(spec.Apps, as)
	}
	return spec, nil
}

// discardPod removes a pod whose preparation failed, so it does not linger
// until the next gc.
func discardPod(g *globalOptions, p *stage0.Pod) {
	if q, err := stage0.Get(g.podsDir(), p.UUID); err == nil {
		if err := stage0.Remove(q, stage0.GCConfig{Log: g.Log}); err != nil {
			g.Log.Debug("removing a failed pod", "pod", p.UUID, "err", err)
		}
	}
}

// baseEnv is the environment below every app's image environment: orbit's
// own with --inherit-env, then the --set-env-file files.
func (pf *podFlags) baseEnv() ([]string, error) {
	var env []string
	if pf.inheritEnv {
		env = append(env, os.Environ()...)
	}
	for _, path := range pf.setEnvFiles {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("--set-env-file: %w", err)
		}
		s := bufio.NewScanner(f)
		for n := 1; s.Scan(); n++ {
			line := strings.TrimSpace(s.Text())
			if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") {
				continue
			}
			if k, _, ok := strings.Cut(line, "="); !ok || k == "" {
				f.Close()
				return nil, fmt.Errorf("--set-env-file %s line %d: want NAME=VALUE: %w", path, n, errdefs.ErrInvalid)
			}
			env = append(env, line)
		}
		f.Close()
		if err := s.Err(); err != nil {
			return nil, err
		}
	}
	return env, nil
}

// loadPodManifest reads a hand-written pod manifest, refusing one larger
// than stage0.MaxPodManifestSize, and reports a malformed one in one line.
func loadPodManifest(path string) (*schema.PodManifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--pod-manifest: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, stage0.MaxPodManifestSize+1))
	if err != nil {
		return nil, fmt.Errorf("--pod-manifest: %w", err)
	}
	if len(data) > stage0.MaxPodManifestSize {
		return nil, fmt.Errorf("--pod-manifest %s: larger than %d MiB: %w", path, stage0.MaxPodManifestSize>>20, errdefs.ErrInvalid)
	}
	if err := refuseOCIReferences(data); err != nil {
		return nil, fmt.Errorf("--pod-manifest %s: %w", path, err)
	}
	pm, err := stage0.ParsePodManifest(data)
	if err != nil {
		return nil, fmt.Errorf("--pod-manifest %s: %w", path, err)
	}
	return pm, nil
}

// fetchPodManifestImages makes sure the images of a pod manifest's apps
// are in the store and records their IDs in the manifest.
func fetchPodManifestImages(ctx context.Context, pm *schema.PodManifest, f *fetch.Fetcher, st *store.Store, policy fetch.PullPolicy) error {
	for i, ra := range pm.Apps {
		ref := ra.Image.ID.String()
		if ra.Image.ID.Empty() {
			if ra.Image.Name == nil {
				return fmt.Errorf("--pod-manifest: app %s names no image: %w", ra.Name, errdefs.ErrInvalid)
			}
			ref = ra.Image.Name.String()
			for _, l := range ra.Image.Labels {
				ref += "," + l.Name.String() + "=" + l.Value
			}
		}
		id, err := fetchImage(ctx, f, st, ref, policy, "")
		if err != nil {
			return fmt.Errorf("--pod-manifest: app %s: %w", ra.Name, err)
		}
		h, err := types.NewHash(id)
		if err != nil {
			return err
		}
		pm.Apps[i].Image.ID = *h
	}
	return nil
}

// stage1RunFlags are the flags that shape how stage1 runs a pod.
type stage1RunFlags struct {
	interactive bool
	hostname    string
	net         []string
	dns         stage0.DNSConfig
	mdsRegister bool
	ipc         string
	kvmAccel    string
	kvmKernel   string
}

func (r *stage1RunFlags) addFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&r.interactive, "interactive", false, "run a one-app pod interactively: the app gets orbit's stdin (and terminal)")
	fs.StringVar(&r.hostname, "hostname", "", "the pod's host name (default: the flavour's; orbit-<uuid> where the pod has its own)")
	fs.StringSliceVar(&r.net, "net", nil, "networks for the pod: default, default-restricted, none, host, or names from net.d, each with optional :CNI_ARGS (default: \"default\" under nspawn, \"host\" under fly)")
	fs.StringSliceVar(&r.dns.Servers, "dns", nil, "name servers for the pod's /etc/resolv.conf, or \"host\" (the host's file) or \"none\"")
	fs.StringSliceVar(&r.dns.Search, "dns-search", nil, "DNS search domains for the pod's /etc/resolv.conf")
	fs.StringSliceVar(&r.dns.Options, "dns-opt", nil, "DNS options for the pod's /etc/resolv.conf")
	fs.StringVar(&r.dns.Domain, "dns-domain", "", "the DNS domain for the pod's /etc/resolv.conf")
	fs.StringSliceVar(&r.dns.Hosts, "hosts-entry", nil, "/etc/hosts entries IP=HOSTNAME for the pod (comma-separated or repeated), or \"host\" for the host's file")
	fs.StringVar(&r.ipc, "ipc", "auto", "the pod's IPC namespace: auto (the flavour's: nspawn a private one, fly the host's), private or parent (the host's; nspawn and fly)")
	fs.StringVar(&r.kvmAccel, "stage1-kvm-accel", "", "the kvm flavour's accelerator: auto (KVM when it boots the guest, else TCG emulation), kvm or tcg (default auto, or $"+contract.KVMAccelEnv+")")
	fs.StringVar(&r.kvmKernel, "stage1-kvm-kernel", "", "the kvm flavour's guest kernel: a kernel image of your own (default: orbit's small kernel when built, else Debian's packaged one, or $"+contract.KVMKernelEnv+")")
	fs.BoolVar(&r.mdsRegister, "mds-register", false, "register the pod with the metadata service (orbit metadata-service) and give its apps AC_METADATA_URL")
}

// check refuses run flags the pod's stage1 would refuse, before a pod is
// made: DNS settings, the host name (also when given empty) and networks
// (their syntax; see checkNetworks for their definitions).
func (r *stage1RunFlags) check(cmd *cobra.Command, flavour builtin.Flavour) error {
	if err := r.dns.Validate(); err != nil {
		return dnsFlagError(err)
	}
	if f := cmd.Flags().Lookup("hostname"); f != nil && f.Changed {
		if err := stage0.CheckHostname(r.hostname); err != nil {
			return err
		}
	}
	if f := cmd.Flags().Lookup("net"); f != nil && f.Changed && len(r.net) == 0 {
		return fmt.Errorf("--net is empty; omit it for the flavour's default: %w", errdefs.ErrInvalid)
	}
	// The flavour is not known yet for run-prepared or a stage1 given by
	// URL, path or hash: the value is checked now, the mode once the
	// flavour is known (by stage0.Run).
	ipcFlavour := flavour
	if ipcFlavour == 0 && slices.Contains([]string{"private", "parent"}, r.ipc) {
		ipcFlavour = builtin.Nspawn
	}
	if err := stage0.CheckIPC(r.ipc, ipcFlavour); err != nil {
		return err
	}
	if r.kvmAccel != "" && !slices.Contains(contract.KVMAccelerators(), r.kvmAccel) {
		return fmt.Errorf("--stage1-kvm-accel=%s: want auto, kvm or tcg: %w", r.kvmAccel, errdefs.ErrInvalid)
	}
	if r.kvmKernel != "" {
		abs, err := filepath.Abs(r.kvmKernel)
		if err != nil {
			return err
		}
		if fi, err := os.Stat(abs); err != nil || !fi.Mode().IsRegular() {
			return fmt.Errorf("--stage1-kvm-kernel=%s: not a kernel image file: %w", r.kvmKernel, errdefs.ErrNotFound)
		}
		r.kvmKernel = abs
	}
	return stage0.CheckNet(r.net, flavour)
}

// checkNetworks refuses, before anything is fetched, networks that cannot
// be set up (unknown, malformed definitions, missing plugins) and host
// ports something on the host listens on already.
func (r *stage1RunFlags) checkNetworks(g *globalOptions, flavour builtin.Flavour, ports []string) error {
	cfg := network.Config{LocalConfig: g.LocalConfig, ExtraPluginPath: os.Getenv("CNI_PATH")}
	if err := stage0.CheckNetworks(r.net, flavour, cfg, len(ports) > 0 && !stage0.HostNetwork(r.net, flavour)); err != nil {
		return err
	}
	if stage0.HostNetwork(r.net, flavour) {
		return nil
	}
	for _, v := range ports {
		p, err := parsePortFlag(v)
		if err != nil {
			return err
		}
		m := network.PortMapping{HostPort: int(p.HostPort), Protocol: "tcp"}
		if p.HostIP != nil {
			m.HostIP = p.HostIP.String()
		}
		if err := network.CheckPortFree(m); err != nil {
			return err
		}
	}
	return nil
}

// dnsFlagError words an error in the pod's DNS settings with the flags
// that set them.
func dnsFlagError(err error) error {
	var de *stage0.DNSError
	if !errors.As(err, &de) {
		return err
	}
	switch de.Kind {
	case stage0.DNSOptionsWithSpecialServer:
		return fmt.Errorf("--dns-search, --dns-opt and --dns-domain cannot be used with --dns=%s: %w", de.Value, errdefs.ErrInvalid)
	case stage0.DNSSpecialServerNotAlone:
		return fmt.Errorf("--dns=%s must be the only --dns value: %w", de.Value, errdefs.ErrInvalid)
	case stage0.DNSHostHostsNotAlone:
		return fmt.Errorf("--hosts-entry=host must be the only --hosts-entry value: %w", errdefs.ErrInvalid)
	case stage0.DNSBadServer:
		return fmt.Errorf("--dns=%s: not an IP address, \"host\" or \"none\": %w", de.Value, errdefs.ErrInvalid)
	case stage0.DNSBadHostsEntry:
		return fmt.Errorf("--hosts-entry=%s: want IP=HOSTNAME or \"host\": %w", de.Value, errdefs.ErrInvalid)
	}
	return err
}

func (r *stage1RunFlags) config(g *globalOptions) stage0.RunConfig {
	return stage0.RunConfig{
		Debug:                          g.Debug,
		Interactive:                    r.interactive,
		Hostname:                       r.hostname,
		Net:                            r.net,
		LocalConfig:                    g.LocalConfig,
		DNS:                            r.dns,
		IPC:                            r.ipc,
		DisableCapabilitiesRestriction: g.Insecure.Has(insecure.Capabilities),
		DisablePaths:                   g.Insecure.Has(insecure.Paths),
		DisableSeccomp:                 g.Insecure.Has(insecure.Seccomp),
		KVM:                            stage0.KVMConfig{Accel: r.kvmAccel, Kernel: r.kvmKernel},
	}
}

type runOptions struct {
	pod podFlags
	run stage1RunFlags
}

func newRunCommand(g *globalOptions) *cobra.Command {
	var o runOptions
	cmd := &cobra.Command{
		Use:   "run [flags] IMAGE [per-app flags] [-- image-args... ---] [IMAGE ...]",
		Short: "Run images in a new pod",
		Long: `Run one or more images in a new pod. IMAGE is an image ID, a URL, a file or
a name (checked in that order). Flags after an image apply to that image only;
arguments after "--" are appended to its exec, up to a lone "---".

orbit run exits with the app's exit status.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRun(cmd.Context(), g, cmd, &o, args)
		},
	}
	cmd.Flags().SetInterspersed(false)
	o.pod.addFlags(cmd.Flags(), "new")
	o.run.addFlags(cmd.Flags())
	return cmd
}

func runRun(ctx context.Context, g *globalOptions, cmd *cobra.Command, o *runOptions, args []string) error {
	if cmd.Flags().ArgsLenAtDash() == 0 {
		return fmt.Errorf("\"--\" must follow an image: %w", errdefs.ErrInvalid)
	}
	if err := o.run.check(cmd, o.pod.stage1.flavour()); err != nil {
		return err
	}
	if err := o.run.applyKVMConfig(g); err != nil {
		return err
	}
	if o.pod.stage1.flavour() == builtin.KVM {
		if err := o.run.config(g).KVM.Check(); err != nil {
			return err
		}
	}
	if err := o.run.checkNetworks(g, o.pod.stage1.flavour(), o.pod.ports); err != nil {
		return err
	}
	o.pod.hostNetwork = stage0.HostNetwork(o.run.net, o.pod.stage1.flavour())
	o.pod.forwardPorts = !o.pod.hostNetwork && o.pod.stage1.flavour() != 0
	if err := o.run.checkMetadataService(ctx, g); err != nil {
		return err
	}
	p, err := preparePod(ctx, g, cmd, &o.pod, args)
	if err != nil {
		return err
	}
	g.Log.Debug("pod prepared", "pod", p.UUID)
	cfg := o.run.config(g)
	if err := o.run.registerPod(ctx, g, p, &cfg); err != nil {
		p.Close()
		discardPod(g, p)
		return err
	}
	if err := g.handOverSignals(); err != nil {
		p.Close()
		discardPod(g, p)
		return err
	}
	return stage0.Run(p, cfg)
}

// pullPolicy reads --pull-policy, with rkt's deprecated --store-only and
// --no-store as its other spellings.
func pullPolicy(s string, storeOnly, noStore bool) (fetch.PullPolicy, error) {
	switch {
	case storeOnly && noStore:
		return 0, fmt.Errorf("--store-only and --no-store cannot be used together: %w", errdefs.ErrInvalid)
	case storeOnly:
		return fetch.PullNever, nil
	case noStore:
		return fetch.PullUpdate, nil
	}
	return fetch.ParsePullPolicy(s)
}

// parsePortFlag reads rkt's --port=NAME:[IP:]HOSTPORT.
func parsePortFlag(s string) (types.ExposedPort, error) {
	bad := func(why string) (types.ExposedPort, error) {
		return types.ExposedPort{}, fmt.Errorf("--port=%q: %s; want NAME:[IP:]HOSTPORT: %w", s, why, errdefs.ErrInvalid)
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return bad("wrong number of fields")
	}
	name, err := types.NewACName(parts[0])
	if err != nil {
		return bad("bad port name")
	}
	port := types.ExposedPort{Name: *name}
	if len(parts) == 3 {
		if port.HostIP = net.ParseIP(parts[1]); port.HostIP == nil {
			return bad("bad IP address")
		}
	}
	n, err := strconv.ParseUint(parts[len(parts)-1], 10, 16)
	if err != nil || n == 0 {
		return bad("bad host port")
	}
	port.HostPort = uint(n)
	return port, nil
}

// checkDeclaredPorts refuses a --port whose name no app's image declares,
// before the pod is made.
func checkDeclaredPorts(trees storeTrees, spec stage0.PodSpec) error {
	if len(spec.Ports) == 0 {
		return nil
	}
	var declared []types.Port
	for _, a := range spec.Apps {
		im, err := trees.Manifest(a.ImageID)
		if err != nil {
			return err
		}
		if im.App != nil {
			declared = append(declared, im.App.Ports...)
		}
	}
	_, err := network.PortMappings(spec.Ports, declared)
	return err
}

// refuseOCIReferences explains the one mistake a pod manifest's image name
// cannot otherwise report well: an OCI reference (docker://...), which an
// appc image name, an identifier without ":", cannot hold. The image must
// be fetched first and named as the store knows it.
func refuseOCIReferences(data []byte) error {
	var pm struct {
		Apps []struct {
			Name  string `json:"name"`
			Image struct {
				Name string `json:"name"`
			} `json:"image"`
		} `json:"apps"`
	}
	if json.Unmarshal(data, &pm) != nil {
		return nil // the appc decoder says what is wrong
	}
	for _, a := range pm.Apps {
		name, version, ok := fetch.OCIStoredName(a.Image.Name)
		if !ok {
			continue
		}
		return fmt.Errorf("app %s: image %q is an OCI reference, which a pod manifest cannot hold (image names are appc identifiers); fetch it first and name it as stored: {\"name\": %q, \"labels\": [{\"name\": \"version\", \"value\": %q}]}: %w",
			a.Name, a.Image.Name, name, version, errdefs.ErrInvalid)
	}
	return nil
}
