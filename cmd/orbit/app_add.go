package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage0"
)

type appAddOptions struct {
	app                 appFlags
	pullPolicy          string
	trustKeys           bool
	stdout, stderr, log string
}

func newAppAddCommand(g *globalOptions) *cobra.Command {
	var o appAddOptions
	cmd := &cobra.Command{
		Use:   "add UUID IMAGE [per-app flags] [-- image-args...]",
		Short: "Add an app to a running sandbox, created and not started",
		Long: `Fetch and verify IMAGE as orbit run does and add it to the running sandbox
UUID as a created app (start it with orbit app start). The per-app flags of
orbit run apply; arguments after "--" are appended to the app's exec. The
app's name is --name, or else the image name's last element.

--stdout and --stderr (or --log for both) name host files the app's output
is appended to, besides the pod's output.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runAppAdd(cmd.Context(), g, cmd, &o, args)
		},
	}
	fs := cmd.Flags()
	addAppFlags(fs, &o.app)
	fs.StringVar(&o.pullPolicy, "pull-policy", "new", "when to fetch the image: never, new (only if not in the store) or update (always check)")
	fs.BoolVar(&o.trustKeys, "trust-keys-from-https", false, "trust keys discovered over HTTPS on first use")
	fs.StringVar(&o.stdout, "stdout", "", "append the app's standard output to this host file too")
	fs.StringVar(&o.stderr, "stderr", "", "append the app's standard error to this host file too")
	fs.StringVar(&o.log, "log", "", "append the app's standard output and error to this host file too")
	return cmd
}

func runAppAdd(ctx context.Context, g *globalOptions, cmd *cobra.Command, o *appAddOptions, args []string) error {
	if n := cmd.Flags().ArgsLenAtDash(); n >= 0 && n < 2 {
		return usageErr(cmd, "\"--\" must follow the pod UUID and the image")
	}
	if o.log != "" && (o.stdout != "" || o.stderr != "") {
		return usageErr(cmd, "--log cannot be used with --stdout or --stderr")
	}
	if o.log != "" {
		o.stdout, o.stderr = o.log, o.log
	}
	for _, p := range []*string{&o.stdout, &o.stderr} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return err
		}
		*p = abs
	}
	o.app.recordSet(cmd.Flags())
	if err := o.app.validate(); err != nil {
		return err
	}
	policy, err := pullPolicy(o.pullPolicy, false, false)
	if err != nil {
		return err
	}
	a := appArg{image: args[1], flags: o.app, args: args[2:]}
	spec, err := a.appSpec("")
	if err != nil {
		return fmt.Errorf("image %s: %w", a.image, err)
	}
	p, err := getPod(g, args[0])
	if err != nil {
		return err
	}
	if p.State != stage0.Running {
		return fmt.Errorf("pod %s is %s, not running: %w", p.UUID, p.State, errdefs.ErrInvalid)
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
	if spec.ImageID, err = f.Fetch(ctx, a.image, policy, o.app.signature); err != nil {
		return err
	}
	trees := newStoreTrees(st)
	name, err := stage0.AddApp(ctx, p, stage0.AddAppConfig{AppConfig: g.appConfig(), Trees: trees, Spec: spec, Stdout: o.stdout, Stderr: o.stderr})
	if err != nil {
		return err
	}
	trees.touchUsed(g.Log)
	g.printf("%s\n", name)
	return nil
}
