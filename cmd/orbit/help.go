package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// commandHelp is what `--help`, the man pages and the argument checks say
// about one command beyond its flags.
type commandHelp struct {
	// needs names the arguments, for "orbit run needs an IMAGE".
	needs string
	// root: the command changes the store, pods, mounts or namespaces,
	// which only root may do; it is refused up front for anyone else.
	root bool
	// example is the Examples section of --help and of the man page.
	example string
}

// commandHelps is keyed by the command's path without "orbit ".
func commandHelps() map[string]commandHelp {
	return map[string]commandHelp{
		"version": {example: `  orbit version`},
		"image": {example: `  orbit image list
  orbit image rm example.com/hello:1.0`},
		"image build": {needs: "a ROOTFS_DIR, a MANIFEST_FILE and an OUTPUT.aci", example: `  # an image of a directory and an appc image manifest
  orbit image build ./rootfs manifest.json hello.aci`},
		"image list": {example: `  orbit image list
  orbit image list --fields=id,name,size --sort=size --order=desc
  orbit image list --quiet                # image IDs only, one a line
  orbit image list --no-legend            # rows for scripts: fields separated by one tab`},
		"image cat-manifest": {needs: "an image ID or NAME", example: `  orbit image cat-manifest --pretty-print example.com/hello:1.0`},
		"image export":       {needs: "an image ID or NAME and a FILE.aci", example: `  orbit image export example.com/hello:1.0 hello-copy.aci`},
		"image extract":      {needs: "an image ID or NAME and a DIR", example: `  orbit image extract --rootfs-only example.com/hello:1.0 /tmp/hello-rootfs`},
		"image render":       {needs: "an image ID or NAME and a DIR", root: true, example: `  orbit image render --rootfs-only example.com/hello:1.0 /tmp/hello-rendered`},
		"image rm": {needs: "an image ID or NAME", root: true, example: `  orbit image rm example.com/hello:1.0
  orbit image rm sha512-04ce00df88ef`},
		"image gc": {root: true, example: `  orbit image gc                          # trees no pod uses, images unused for 24h
  orbit image gc --grace-period=0s        # also every image no pod uses`},
		"fetch": {needs: "an IMAGE", root: true, example: `  orbit fetch --insecure-options=image ./hello.aci
  orbit fetch example.com/app:1.0         # by name, via appc discovery, signature checked
  orbit fetch --pull-policy=never example.com/app:1.0   # only if stored`},
		"trust": {example: `  orbit trust --prefix=example.com/app ./pubkey.asc
  orbit trust --root ./pubkey.asc         # trusted for every image`},
		"config": {example: `  orbit config
  orbit config --pretty-print=false`},
		"run": {needs: "an IMAGE", root: true, example: `  orbit run --insecure-options=image example.com/hello:1.0
  orbit run --insecure-options=image --stage1-name=fly ./hello.aci
  orbit run --insecure-options=image ./hello.aci --exec=/bin/sh -- -c 'echo $GREETING'
  orbit run --insecure-options=image --volume=data,kind=host,source=/srv \
      example.com/hello:1.0 --mount=volume=data,target=/data --memory=64Mi
  # in the background, as a transient systemd service
  systemd-run --unit=hello orbit run --insecure-options=image example.com/hello:1.0`},
		"prepare": {needs: "an IMAGE", root: true, example: `  orbit prepare --insecure-options=image ./hello.aci
  orbit prepare --insecure-options=image --uuid-file-save=/run/hello.uuid example.com/hello:1.0`},
		"run-prepared": {needs: "a pod UUID", root: true, example: `  orbit run-prepared 5f1b2c3d
  orbit run-prepared --interactive 5f1b2c3d`},
		"list": {example: `  orbit list
  orbit list --full
  orbit list --quiet                      # pod UUIDs only, one a line
  orbit list --no-legend | awk -F'\t' '$5 == "running" {print $1}'
  orbit list --format=json-pretty`},
		"status": {needs: "a pod UUID", example: `  orbit status 5f1b2c3d
  orbit status --wait=5m 5f1b2c3d         # until the pod exits
  orbit status --wait-ready --uuid-file=/run/hello.uuid`},
		"gc": {root: true, example: `  orbit gc
  orbit gc --grace-period=0s              # remove exited pods now
  orbit gc --mark-only`},
		"rm": {needs: "a pod UUID", root: true, example: `  orbit rm 5f1b2c3d
  orbit rm --uuid-file=/run/hello.uuid`},
		"cat-manifest": {needs: "a pod UUID", example: `  orbit cat-manifest --pretty-print 5f1b2c3d`},
		"export": {needs: "a pod UUID and a FILE.aci", root: true, example: `  orbit export 5f1b2c3d hello-changed.aci
  orbit export --app=web --overwrite 5f1b2c3d web.aci
  orbit fetch --insecure-options=image hello-changed.aci`},
		"enter": {needs: "a pod UUID", root: true, example: `  orbit enter 5f1b2c3d                    # /bin/sh in the pod's only app
  orbit enter --app=hello 5f1b2c3d /bin/ps
  orbit enter 5f1b2c3d /bin/sleep 1`},
		"stop": {needs: "a pod UUID", root: true, example: `  orbit stop 5f1b2c3d
  orbit stop --force 5f1b2c3d
  orbit stop --uuid-file=/run/hello.uuid`},
		"metadata-service": {root: true, example: `  orbit metadata-service
  orbit run --mds-register --insecure-options=image example.com/hello:1.0`},
		"logs": {needs: "a pod UUID", root: true, example: `  orbit logs --app=web 5f1b2c3d      # an app added with --log=FILE
  orbit logs 5f1b2c3d                # a sandbox started in the background`},
		"app": {example: `  orbit app sandbox --uuid-file-save=/run/web.uuid
  orbit app add $(cat /run/web.uuid) example.com/web:1.0 --name=web
  orbit app start $(cat /run/web.uuid) --app=web`},
		"app sandbox": {root: true, example: `  orbit app sandbox --uuid-file-save=/run/web.uuid    # returns once the pod runs
  orbit app sandbox --foreground --net=default          # stays as the pod's process, as a unit runs it`},
		"app add": {needs: "a pod UUID and an IMAGE", root: true, example: `  orbit app add 5f1b2c3d example.com/web:1.0 --name=web --log=/var/log/web.log
  orbit app add 5f1b2c3d example.com/tools:1.0 --exec=/bin/sleep -- 3600`},
		"app start": {needs: "a pod UUID", root: true, example: `  orbit app start 5f1b2c3d --app=web`},
		"app stop":  {needs: "a pod UUID", root: true, example: `  orbit app stop 5f1b2c3d --app=web`},
		"app rm":    {needs: "a pod UUID", root: true, example: `  orbit app rm 5f1b2c3d --app=web`},
		"app list": {needs: "a pod UUID", example: `  orbit app list 5f1b2c3d
  orbit app list --format=json 5f1b2c3d`},
		"app status": {needs: "a pod UUID", example: `  orbit app status 5f1b2c3d --app=web
  orbit app status --format=json 5f1b2c3d --app=web`},
	}
}

// applyHelp gives every command of the tree its examples, refuses missing
// or extra arguments in one line naming what is needed, and refuses
// commands that need root to anyone else up front.
func applyHelp(root *cobra.Command) {
	helps := commandHelps()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		path := strings.TrimPrefix(c.CommandPath(), root.Name()+" ")
		h, ok := helps[path]
		if ok {
			if c.Example == "" {
				c.Example = h.example
			}
			if h.root {
				if c.Annotations == nil {
					c.Annotations = map[string]string{}
				}
				c.Annotations[annotationNeedsRoot] = "true"
			}
			if check := c.Args; check != nil {
				needs := h.needs
				c.Args = func(cmd *cobra.Command, args []string) error {
					if err := check(cmd, args); err != nil {
						return argsError(cmd, needs, args, err)
					}
					return nil
				}
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// needsRootError is a command refused to a user other than root.
type needsRootError string

func (e needsRootError) Error() string { return string(e) }
func (e needsRootError) Unwrap() error { return fs.ErrPermission }

// permissionHint words a permission error met by a user other than root,
// for the commands that may work without root (list, status) but not on
// a data directory only root may read.
func permissionHint(err error, cmdPath string) error {
	var nr needsRootError
	if os.Geteuid() == 0 || !errors.Is(err, fs.ErrPermission) || errors.As(err, &nr) {
		return err
	}
	return fmt.Errorf("needs root for '%s' here (%w); run it as root, e.g. with sudo", cmdPath, err)
}

const annotationNeedsRoot = "orbit.needs-root"

// argsError words cobra's "accepts 1 arg(s), received 0" for people.
func argsError(cmd *cobra.Command, needs string, args []string, err error) error {
	switch {
	case len(args) == 0 && needs != "":
		return usageErr(cmd, fmt.Sprintf("%s needs %s", commandName(cmd), needs))
	case needs != "":
		return usageErr(cmd, fmt.Sprintf("%s takes %s; got %d arguments (%s)", commandName(cmd), needs, len(args), strings.Join(args, " ")))
	}
	return usageErr(cmd, fmt.Sprintf("%s: %v", commandName(cmd), err))
}

// commandName is the command's path without the leading "orbit".
func commandName(cmd *cobra.Command) string {
	if !cmd.HasParent() {
		return cmd.Name()
	}
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// checkRoot refuses a command that needs root when orbit is not root,
// before it touches anything, in one line.
func checkRoot(cmd *cobra.Command) error {
	if os.Geteuid() == 0 || cmd.Annotations[annotationNeedsRoot] == "" {
		return nil
	}
	return needsRootError(fmt.Sprintf("needs root for '%s' (it %s); run it as root, e.g. with sudo",
		cmd.CommandPath(), rootReason(commandName(cmd))))
}

func rootReason(name string) string {
	switch {
	case name == "run" || name == "run-prepared":
		return "makes mounts, namespaces and cgroups for the pod"
	case name == "enter":
		return "joins the pod's namespaces"
	case name == "export":
		return "mounts the app's root filesystem"
	case name == "stop":
		return "signals the pod's processes"
	case strings.HasPrefix(name, "image ") || name == "fetch":
		return "reads and writes the image store under --dir"
	case name == "metadata-service":
		return "serves on a root-only socket under --dir"
	}
	return "changes pods under --dir"
}

// misplacedFlag words a flag found among an image's flags that is not a
// per-app flag, pointing at where it goes.
func misplacedFlag(cmd *cobra.Command, e *misplacedFlagError) error {
	flag := "--" + e.flag
	switch {
	case cmd.InheritedFlags().Lookup(e.flag) != nil:
		return usageErr(cmd, fmt.Sprintf("%s after image %s: %s is a global flag; give it before the image: 'orbit %s %s %s'",
			flag, e.image, flag, commandName(cmd), e.given, e.image))
	case cmd.LocalFlags().Lookup(e.flag) != nil:
		return usageErr(cmd, fmt.Sprintf("%s after image %s: %s applies to the whole pod; give it before the first image: 'orbit %s %s %s'",
			flag, e.image, flag, commandName(cmd), e.given, e.image))
	}
	return usageErr(cmd, fmt.Sprintf("image %s: unknown flag: %s%s", e.image, flag, otherCommandsHint(cmd, e.flag)))
}

// globalFlagHint adds to cobra's "unknown flag: --x" the commands that do
// have that flag.
func globalFlagHint(cmd *cobra.Command, err error) string {
	name, ok := unknownFlagName(err)
	if !ok {
		return ""
	}
	return otherCommandsHint(cmd, name)
}

func otherCommandsHint(cmd *cobra.Command, name string) string {
	var owners []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c != cmd && !c.Hidden && c.LocalNonPersistentFlags().Lookup(name) != nil && len(owners) < 3 {
			owners = append(owners, "'"+c.CommandPath()+"'")
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(cmd.Root())
	if len(owners) == 0 {
		return ""
	}
	return fmt.Sprintf("; --%s is a flag of %s", name, strings.Join(owners, ", "))
}
