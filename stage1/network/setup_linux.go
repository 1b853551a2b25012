package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
)

// portmapPlugin forwards host ports to the pod (chained after the first
// network's plugins).
const portmapPlugin = "portmap"

// Plan is what Setup is asked to do for a pod.
type Plan struct {
	// Dir is the pod directory (absolute), UUID the pod's.
	Dir, UUID string
	Requests  []Request
	Ports     []PortMapping
	// IPAMDataDir is where host-local keeps leases for networks whose
	// definition names no place.
	IPAMDataDir string
}

// Setup makes the pod's network namespace and joins it to the requested
// networks, recording each step first (see Record). On failure everything
// done so far is undone and the one error says why; the returned record
// carries each network's result.
func (c Config) Setup(ctx context.Context, pl Plan) (*Record, error) {
	defs, err := c.Resolve(pl.Requests, len(pl.Ports) > 0)
	if err != nil {
		return nil, err
	}
	if err := checkPortsFree(pl.Dir, pl.Ports); err != nil {
		return nil, err
	}
	rec := &Record{ContainerID: pl.UUID, NetNS: contract.NetNS(pl.Dir), PluginPath: c.PluginPath(), CacheDir: contract.CNICache(pl.Dir)}
	reqArgs := map[string]string{}
	for _, r := range pl.Requests {
		reqArgs[r.Name] = r.Args
	}
	for i, d := range defs {
		a := Attachment{Name: d.Name, IfName: fmt.Sprintf("eth%d", i), Args: reqArgs[d.Name], File: d.File}
		var ports []PortMapping
		if i == 0 {
			ports = pl.Ports
		}
		if a.Config, err = attachmentConfig(d.List, ports, pl.IPAMDataDir); err != nil {
			return nil, fmt.Errorf("network %s: %w", d.Name, err)
		}
		a.PortMappings = ports
		rec.Networks = append(rec.Networks, a)
	}
	// The intent first: from here on gc can undo whatever happens.
	if err := rec.write(pl.Dir); err != nil {
		return nil, fmt.Errorf("recording the pod's networks: %w", err)
	}
	fail := func(err error) (*Record, error) {
		if terr := Teardown(context.WithoutCancel(ctx), pl.Dir); terr != nil {
			err = fmt.Errorf("%w (and undoing it: %s)", err, oneLine(terr.Error()))
		}
		return nil, err
	}
	if err := createNetNS(rec.NetNS); err != nil {
		return fail(fmt.Errorf("making the pod's network namespace: %w", err))
	}
	cni := libcni.NewCNIConfigWithCacheDir(rec.PluginPath, rec.CacheDir, nil)
	for i := range rec.Networks {
		a := &rec.Networks[i]
		list, err := libcni.ConfListFromBytes(a.Config)
		if err != nil {
			return fail(fmt.Errorf("network %s: %w", a.Name, err))
		}
		res, err := cni.AddNetworkList(ctx, list, rec.runtimeConf(a))
		if err != nil {
			return fail(fmt.Errorf("network %s: joining the pod to it: %s: %w", a.Name, oneLine(err.Error()), errdefs.ErrInvalid))
		}
		if a.Result, err = json.Marshal(res); err != nil {
			return fail(err)
		}
		if err := rec.write(pl.Dir); err != nil {
			return fail(err)
		}
	}
	data, err := json.Marshal(rec.netInfos())
	if err == nil {
		err = os.WriteFile(contract.NetInfo(pl.Dir), data, 0o644)
	}
	if err != nil {
		return fail(fmt.Errorf("writing %s: %w", contract.NetInfo(""), err))
	}
	return rec, nil
}

func (r *Record) runtimeConf(a *Attachment) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: r.ContainerID, IfName: a.IfName, CacheDir: r.CacheDir}
	if isNetNS(r.NetNS) {
		rt.NetNS = r.NetNS
	}
	if a.Args != "" {
		// As every CNI runtime: plugins that do not know an argument
		// (IP= is host-local's) leave it to those that do.
		rt.Args = append(rt.Args, [2]string{"IgnoreUnknown", "1"})
		for _, kv := range strings.Split(a.Args, ";") {
			k, v, _ := strings.Cut(kv, "=")
			rt.Args = append(rt.Args, [2]string{k, v})
		}
	}
	if len(a.PortMappings) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": a.PortMappings}
	}
	return rt
}

// attachmentConfig is a network's configuration list as the pod's
// plugins get it: host-local leases under dataDir unless the definition
// says where, and portmap chained at the end when ports are forwarded.
func attachmentConfig(list *libcni.NetworkConfigList, ports []PortMapping, dataDir string) ([]byte, error) {
	var raw map[string]any
	if err := json.Unmarshal(list.Bytes, &raw); err != nil {
		return nil, err
	}
	var plugins []any
	hasPortmap := false
	for _, p := range list.Plugins {
		b, err := withIPAMDataDir(p.Bytes, dataDir)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		plugins = append(plugins, m)
		hasPortmap = hasPortmap || p.Network.Type == portmapPlugin
	}
	if len(ports) > 0 && !hasPortmap {
		plugins = append(plugins, map[string]any{"type": portmapPlugin, "snat": true, "capabilities": map[string]bool{"portMappings": true}})
	}
	raw["plugins"] = plugins
	return json.Marshal(raw)
}

// Teardown undoes what a pod's record says was (or may have been) set up:
// CNI DEL for every network, last first, then the namespace, then the
// record. It runs in gc after any kill, and again harmlessly: a pod
// without a record has nothing left. When a DEL fails the record stays,
// so a later gc tries again.
func Teardown(ctx context.Context, dir string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	rec, err := ReadRecord(dir)
	if err != nil {
		return err
	}
	if rec == nil {
		return removeNetNS(contract.NetNS(dir))
	}
	// The pod directory has moved since (run to exited-garbage): its own
	// namespace mount and cache are where it is now.
	rec.NetNS, rec.CacheDir = contract.NetNS(dir), contract.CNICache(dir)
	cni := libcni.NewCNIConfigWithCacheDir(rec.PluginPath, rec.CacheDir, nil)
	var errs []error
	for i := len(rec.Networks) - 1; i >= 0; i-- {
		a := &rec.Networks[i]
		list, err := libcni.ConfListFromBytes(a.Config)
		if err == nil {
			err = cni.DelNetworkList(ctx, list, rec.runtimeConf(a))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("network %s: CNI DEL: %s", a.Name, oneLine(err.Error())))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if err := removeNetNS(rec.NetNS); err != nil {
		return err
	}
	if err := os.Remove(contract.NetworkRecord(dir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// createNetNS makes a new network namespace with its loopback up and
// bind-mounts it at path, which outlives every process of the pod (gc
// removes it). The namespace is made by a thread locked to this work,
// which returns to its own namespace before anything else runs on it.
func createNetNS(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		defer func() {
			// Back home, the thread may serve other goroutines; if it
			// cannot go back it stays locked and Go discards it.
			if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
				runtime.UnlockOSThread()
			}
		}()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		if err := loopbackUp(); err != nil {
			errc <- err
			return
		}
		src := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind-mounting %s: %w", src, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// loopbackUp brings up "lo" in the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("loopback flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing up loopback: %w", err)
	}
	return nil
}

// isNetNS reports whether path is a mounted network namespace.
func isNetNS(path string) bool {
	var st unix.Statfs_t
	return path != "" && unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// removeNetNS unmounts and removes a namespace's bind mount, if there.
func removeNetNS(path string) error {
	for isNetNS(path) {
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("unmounting %s: %w", path, err)
		}
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// CreateNoneNetNS gives a pod a namespace with only loopback
// (--net=none), recorded like any other so gc removes it.
func (c Config) CreateNoneNetNS(dir, uuid string) (*Record, error) {
	rec := &Record{ContainerID: uuid, NetNS: contract.NetNS(dir), PluginPath: c.PluginPath(), CacheDir: contract.CNICache(dir)}
	if err := rec.write(dir); err != nil {
		return nil, err
	}
	if err := createNetNS(rec.NetNS); err != nil {
		os.Remove(contract.NetworkRecord(dir))
		return nil, fmt.Errorf("making the pod's network namespace: %w", err)
	}
	if err := os.WriteFile(contract.NetInfo(dir), []byte("[]"), 0o644); err != nil {
		return nil, err
	}
	return rec, nil
}
