package main

import (
	"context"
	"fmt"
	"os"

	"github.com/appc/spec/schema/types"
	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage0"
	"github.com/orbit-containers/orbit/stage1/builtin"
)

type appSandboxOptions struct {
	stage1       stage1Flags
	run          stage1RunFlags
	uuidFileSave string
	volumes      []string
	ports        []string
	annotations  []string
	labels       []string
	noOverlay    bool
	foreground   bool
	trustKeys    bool
}

func newAppSandboxCommand(g *globalOptions) *cobra.Command {
	var o appSandboxOptions
	cmd := &cobra.Command{
		Use:   "sandbox [flags]",
		Short: "Start a pod with no apps, whose apps are then added with orbit app add",
		Long: `Start a sandbox: a running pod with no apps, whose apps are added, started,
stopped and removed while it runs (orbit app add, start, stop, rm). It runs
until orbit stop. The pod's UUID is printed on stdout.

By default orbit returns once the pod's supervisor answers, and the pod's
output goes to output.log in the pod directory. With --foreground orbit
stays the pod's process, as orbit run does (for a systemd unit).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAppSandbox(cmd.Context(), g, cmd, &o)
		},
	}
	fs := cmd.Flags()
	o.stage1.addFlags(fs)
	o.run.addFlags(fs)
	fs.StringVar(&o.uuidFileSave, "uuid-file-save", "", "write the pod's UUID to this file")
	fs.StringArrayVar(&o.volumes, "volume", nil, "a volume: NAME,kind=host,source=PATH[,readOnly=true][,recursive=true] or NAME,kind=empty[,mode=0755,uid=0,gid=0]")
	fs.StringArrayVar(&o.ports, "port", nil, "a port to expose: NAME:[IP:]HOSTPORT")
	fs.StringArrayVar(&o.annotations, "annotation", nil, "an annotation NAME=VALUE for the pod manifest")
	fs.StringArrayVar(&o.labels, "label", nil, "a free-form label NAME=VALUE for the pod (the pod manifest's userLabels)")
	fs.BoolVar(&o.noOverlay, "no-overlay", false, "copy the stage1 image's root filesystem into the pod instead of using overlayfs")
	fs.BoolVar(&o.foreground, "foreground", false, "stay in the foreground as the pod's process, as orbit run does")
	fs.BoolVar(&o.trustKeys, "trust-keys-from-https", false, "trust keys discovered over HTTPS on first use")
	return cmd
}

func runAppSandbox(ctx context.Context, g *globalOptions, cmd *cobra.Command, o *appSandboxOptions) error {
	if o.run.interactive {
		return usageErr(cmd, "--interactive: a sandbox has no single app to give the terminal to")
	}
	if o.run.mdsRegister {
		return usageErr(cmd, "--mds-register is not supported for sandboxes yet")
	}
	if err := o.stage1.check(); err != nil {
		return err
	}
	flavour := o.stage1.flavour()
	if flavour == builtin.Fly {
		return fmt.Errorf("the fly flavour runs exactly one app, fixed when the pod is made; a sandbox needs the nspawn flavour: %w", errdefs.ErrInvalid)
	}
	if err := o.run.check(cmd, flavour); err != nil {
		return err
	}
	var spec stage0.PodSpec
	for _, v := range o.ports {
		port, err := parsePortFlag(v)
		if err != nil {
			return err
		}
		spec.Ports = append(spec.Ports, port)
	}
	for _, v := range o.volumes {
		vol, err := types.VolumeFromString(v)
		if err != nil {
			return fmt.Errorf("--volume %q: %w: %w", v, err, errdefs.ErrInvalid)
		}
		spec.Volumes = append(spec.Volumes, *vol)
	}
	for _, kv := range o.annotations {
		k, v, ok := cutKV(kv)
		name, err := types.NewACIdentifier(k)
		if !ok || err != nil {
			return fmt.Errorf("--annotation %q: want NAME=VALUE with a valid name: %w", kv, errdefs.ErrInvalid)
		}
		spec.Annotations.Set(*name, v)
	}
	pm, err := stage0.BuildSandboxManifest(spec)
	if err != nil {
		return err
	}
	if pm.UserLabels, err = keyValues("--label", o.labels); err != nil {
		return err
	}
	st, err := g.openStore()
	if err != nil {
		return err
	}
	st, leases := st.Leasing()
	defer leases.Release()
	f, err := g.newFetcher(st, o.trustKeys)
	if err != nil {
		return err
	}
	trees := newStoreTrees(st)
	cfg := stage0.PrepareConfig{Trees: trees, UseOverlay: !o.noOverlay, Log: g.Log, PodManifest: pm}
	cfg.Stage1ImageID, cfg.Stage1Flavour, err = o.stage1.resolve(ctx, g, st, f)
	if err != nil {
		return err
	}
	p, err := stage0.NewPod(g.podsDir())
	if err != nil {
		return err
	}
	if err := stage0.Prepare(ctx, p, cfg); err != nil {
		p.Close()
		discardPod(g, p)
		return err
	}
	leases.Release()
	trees.touchUsed(g.Log)
	if o.uuidFileSave != "" {
		if err := os.WriteFile(o.uuidFileSave, []byte(p.UUID), 0o644); err != nil {
			p.Close()
			discardPod(g, p)
			return fmt.Errorf("--uuid-file-save: %w", err)
		}
	}
	rc := o.run.config(g)
	rc.Mutable = true
	if o.foreground {
		if err := g.handOverSignals(); err != nil {
			p.Close()
			discardPod(g, p)
			return err
		}
		return stage0.Run(p, rc)
	}
	if err := stage0.Start(ctx, p, rc); err != nil {
		p.Close()
		return err
	}
	p.Close()
	g.printf("%s\n", p.UUID)
	return nil
}

// cutKV splits NAME=VALUE.
func cutKV(kv string) (string, string, bool) {
	for i := 0; i < len(kv); i++ {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], i > 0
		}
	}
	return kv, "", false
}
