package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/stage0"
	"github.com/orbit-containers/orbit/stage1/builtin"
)

func newPrepareCommand(g *globalOptions) *cobra.Command {
	var pf podFlags
	var quiet bool
	cmd := &cobra.Command{
		Use:   "prepare [flags] IMAGE [per-app flags] [-- image-args... ---] [IMAGE ...]",
		Short: "Prepare a pod to run later with run-prepared",
		Long: `Prepare a pod from images as "orbit run" would, without running it.
The pod's UUID is printed; "orbit run-prepared UUID" runs it.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			// The kernel is found when the pod is run (run-prepared
			// takes the kvm settings); QEMU is needed either way.
			if pf.stage1.flavour() == builtin.KVM {
				if err := stage0.CheckQEMU(); err != nil {
					return err
				}
			}
			p, err := preparePod(cmd.Context(), g, cmd, &pf, args)
			if err != nil {
				return err
			}
			if err := p.ToPrepared(); err != nil {
				return err
			}
			fmt.Fprintln(g.Stdout, p.UUID)
			return nil
		},
	}
	cmd.Flags().SetInterspersed(false)
	pf.addFlags(cmd.Flags(), "new")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print only the UUID (the default; accepted for compatibility)")
	return cmd
}

func newRunPreparedCommand(g *globalOptions) *cobra.Command {
	var rf stage1RunFlags
	cmd := &cobra.Command{
		Use:   "run-prepared UUID",
		Short: "Run a prepared pod",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The flavour is checked by stage0 from the pod's record.
			if err := rf.check(cmd, 0); err != nil {
				return err
			}
			if err := rf.applyKVMConfig(g); err != nil {
				return err
			}
			if err := rf.checkMetadataService(cmd.Context(), g); err != nil {
				return err
			}
			p, err := getPod(g, args[0])
			if err != nil {
				return err
			}
			if err := p.LockPrepared(); err != nil {
				return err
			}
			return runPrepared(cmd.Context(), g, p, rf)
		},
	}
	rf.addFlags(cmd.Flags())
	return cmd
}

func runPrepared(ctx context.Context, g *globalOptions, p *stage0.Pod, rf stage1RunFlags) error {
	cfg := rf.config(g)
	if err := rf.registerPod(ctx, g, p, &cfg); err != nil {
		return err
	}
	if err := g.handOverSignals(); err != nil {
		return err
	}
	return stage0.Run(p, cfg)
}
