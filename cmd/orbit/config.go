package main

import (
	"encoding/json"

	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/fetch"
)

func newConfigCommand(g *globalOptions) *cobra.Command {
	pretty := true
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Print the merged configuration as JSON",
		Long: `Print orbit's configuration, merged from the system, local and user
configuration directories, as JSON: one "auth" entry per domain and the
"paths" in use, in rkt's format, and the kvm flavour's settings ("kvm":
accel and kernel) when kvm.d sets them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			auth, err := fetch.LoadAuth(g.SystemConfig, g.LocalConfig, g.UserConfig)
			if err != nil {
				return err
			}
			var stage0 []any
			for _, e := range auth.Entries() {
				stage0 = append(stage0, e)
			}
			stage0 = append(stage0, map[string]string{
				"rktKind":    "paths",
				"rktVersion": "v1",
				"data":       g.Dir,
			})
			kvm, err := g.loadKVMConfig()
			if err != nil {
				return err
			}
			if kvm != (kvmConfig{}) {
				kvmEntry := map[string]string{"rktKind": kvmConfigKind, "rktVersion": "v1", "accel": "auto"}
				if kvm.Accel != "" {
					kvmEntry["accel"] = kvm.Accel
				}
				if kvm.Kernel != "" {
					kvmEntry["kernel"] = kvm.Kernel
				}
				stage0 = append(stage0, kvmEntry)
			}
			enc := json.NewEncoder(g.Stdout)
			if pretty {
				enc.SetIndent("", "  ")
			}
			return enc.Encode(map[string]any{"stage0": stage0})
		},
	}
	cmd.Flags().BoolVar(&pretty, "pretty-print", true, "indent the JSON; --pretty-print=false prints it on one line")
	return cmd
}
