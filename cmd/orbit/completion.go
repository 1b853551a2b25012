package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/orbit-containers/orbit/stage0"
	"github.com/orbit-containers/orbit/stage1/builtin"
	"github.com/orbit-containers/orbit/stage1/network"
)

// Shell completion (`orbit completion bash|zsh|fish`) completes what the
// command line names, read from --dir when the user presses TAB: pod
// UUIDs in the states a command accepts, image names and IDs, app names,
// flavours and --net values.

// podFilter says which pods a command's argument may name.
type podFilter func(stage0.State) bool

func runningPods(s stage0.State) bool  { return s == stage0.Running }
func preparedPods(s stage0.State) bool { return s == stage0.Prepared }
func anyPod(stage0.State) bool         { return true }
func stoppedPods(s stage0.State) bool  { return s != stage0.Running }

// registerCompletions attaches the completion functions to the commands
// and flags of the tree.
func registerCompletions(g *globalOptions, root *cobra.Command) {
	pods := map[string]podFilter{
		"stop": runningPods, "enter": runningPods, "run-prepared": preparedPods,
		"status": anyPod, "cat-manifest": anyPod, "rm": stoppedPods,
		"export": stoppedPods,
	}
	images := []string{"run", "prepare", "fetch", "image rm", "image cat-manifest", "image export", "image extract", "image render"}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		name := commandName(c)
		if filter, ok := pods[name]; ok && c.ValidArgsFunction == nil {
			// enter takes one pod then a command; the others one or more.
			single := name == "enter" || name == "run-prepared" || name == "status" || name == "cat-manifest" || name == "export"
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
				if single && len(args) > 0 {
					return nil, cobra.ShellCompDirectiveDefault
				}
				return completePods(g, filter, args, toComplete), cobra.ShellCompDirectiveNoFileComp
			}
		}
		if slices.Contains(images, name) && c.ValidArgsFunction == nil {
			c.ValidArgsFunction = func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
				// Files too: an image may be a .aci file.
				return completeImages(g, toComplete), cobra.ShellCompDirectiveDefault
			}
		}
		flagCompletions(g, c)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

func flagCompletions(g *globalOptions, c *cobra.Command) {
	fixed := func(flag string, values ...string) {
		if c.Flags().Lookup(flag) == nil {
			return
		}
		c.RegisterFlagCompletionFunc(flag, cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp))
	}
	var flavours []string
	for _, f := range builtin.Flavours() {
		flavours = append(flavours, f.String()+"\t"+string(f.ImageName()))
	}
	fixed("stage1-name", flavours...)
	if c.Flags().Lookup("net") != nil {
		c.RegisterFlagCompletionFunc("net", func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return netValues(g), cobra.ShellCompDirectiveNoFileComp
		})
	}
	fixed("format", "tabbed", "json", "json-pretty")
	fixed("pull-policy", "never", "new", "update")
	fixed("dns", "host", "none")
	fixed("order", "asc", "desc")
	fixed("fields", "id", "name", "size", "importtime", "lastused", "latest")
	fixed("sort", "id", "name", "size", "importtime", "lastused", "latest")
	if c.Flags().Lookup("stage1-hash") != nil {
		c.RegisterFlagCompletionFunc("stage1-hash", func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return completeImages(g, toComplete), cobra.ShellCompDirectiveNoFileComp
		})
	}
	if c.Name() == "enter" && c.Flags().Lookup("app") != nil {
		c.RegisterFlagCompletionFunc("app", func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return completeAppNames(g, args, toComplete), cobra.ShellCompDirectiveNoFileComp
		})
	}
}

// netValues are the --net values: host and none, rkt's default networks,
// and the networks defined in net.d.
func netValues(g *globalOptions) []string {
	out := []string{"host\tthe host's network", "none\tloopback only"}
	defs, err := network.Config{LocalConfig: g.LocalConfig}.Definitions()
	if err != nil {
		return append(out, "default\trkt's default network", "default-restricted\tthe default network without a route out")
	}
	names := make([]string, 0, len(defs))
	for name := range defs {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		out = append(out, name+"\ta CNI network")
	}
	return out
}

// completePods lists the pods that filter accepts, as UUIDs with their
// apps and state, leaving out those already on the command line.
func completePods(g *globalOptions, filter podFilter, given []string, prefix string) []cobra.Completion {
	pods, err := stage0.List(g.podsDir())
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	for _, p := range pods {
		if !filter(p.State) || !strings.HasPrefix(p.UUID, prefix) || slices.Contains(given, p.UUID) {
			continue
		}
		desc := p.State.String()
		if st, err := p.ReadStatus(); err == nil {
			var apps []string
			for _, a := range st.Apps {
				apps = append(apps, a.Name)
			}
			if len(apps) > 0 {
				desc = strings.Join(apps, ",") + " " + desc
			}
		}
		out = append(out, cobra.CompletionWithDesc(p.UUID, desc))
	}
	return out
}

// completeImages lists stored images by name:version and by ID.
func completeImages(g *globalOptions, prefix string) []cobra.Completion {
	s, err := g.openStore()
	if err != nil {
		return nil
	}
	images, err := s.List()
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	seen := map[string]bool{}
	for _, img := range images {
		name := imageName(img)
		if strings.HasPrefix(name, prefix) && !seen[name] {
			seen[name] = true
			out = append(out, cobra.CompletionWithDesc(name, img.ID[:min(len(img.ID), 19)]))
		}
		if strings.HasPrefix(img.ID, prefix) {
			out = append(out, cobra.CompletionWithDesc(img.ID, name))
		}
	}
	return out
}

// completeAppNames lists the apps of the pod named on the command line,
// or of every running pod when none is named yet.
func completeAppNames(g *globalOptions, args []string, prefix string) []cobra.Completion {
	var pods []*stage0.Pod
	if len(args) > 0 {
		if p, err := getPod(g, args[0]); err == nil {
			pods = append(pods, p)
		}
	} else if all, err := stage0.List(g.podsDir()); err == nil {
		for _, p := range all {
			if p.State == stage0.Running {
				pods = append(pods, p)
			}
		}
	}
	var out []cobra.Completion
	for _, p := range pods {
		st, err := p.ReadStatus()
		if err != nil {
			continue
		}
		for _, a := range st.Apps {
			if strings.HasPrefix(a.Name, prefix) {
				out = append(out, cobra.CompletionWithDesc(a.Name, fmt.Sprintf("pod %s", shortUUID(p.UUID, false))))
			}
		}
	}
	return out
}
