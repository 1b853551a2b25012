package fly

import (
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"
	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/pod"
	"github.com/orbit-containers/orbit/stage2"
)

// Enter is the enter entrypoint: it runs a command as the app's user, in
// the app's root (seen through /proc/<pid>/root, which carries the app's
// mounts) with the app's environment, and exits with its status.
func Enter(args []string) int {
	fs := flag.NewFlagSet("fly enter", flag.ContinueOnError)
	pid := fs.Int("pid", 0, "")
	appName := fs.String("appname", "", "")
	if err := fs.Parse(args); err != nil {
		return 254
	}
	command := fs.Args()
	if len(command) == 0 {
		command = []string{"/bin/sh"}
	}
	if *pid <= 0 {
		fmt.Fprintln(os.Stderr, "stage1 fly enter: --pid is required")
		return 254
	}
	p, err := pod.Load(".", "")
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1 fly enter: %v\n", err)
		return 254
	}
	a, err := enteredApp(p, *appName)
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1 fly enter: %v\n", err)
		return 254
	}
	env, err := pod.ProcessEnv(*pid)
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1 fly enter: %v\n", err)
		return 254
	}
	app := stage2.App{
		Name:              *appName,
		Root:              fmt.Sprintf("/proc/%d/root", *pid),
		Exec:              command,
		Env:               env,
		User:              a.User,
		Group:             a.Group,
		SupplementaryGIDs: a.SupplementaryGIDs,
	}
	cmd, err := stage2.Command(app)
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1 fly enter: %v\n", err)
		return 254
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	signal.Ignore(unix.SIGINT, unix.SIGQUIT) // the terminal's signals go to the command
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "stage1 fly enter: %v\n", err)
		return 254
	}
	code, err := pod.WaitStatus(cmd)
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1 fly enter: %v\n", err)
		return 254
	}
	return code
}

// enteredApp finds the app named name in the pod and returns what it runs
// as (from the pod manifest, or else its image), so that an entered
// command gets the app's user and groups and never more.
func enteredApp(p *pod.Pod, name string) (*types.App, error) {
	for i := range p.Manifest.Apps {
		ra := &p.Manifest.Apps[i]
		if ra.Name.String() != name {
			continue
		}
		var im *schema.ImageManifest
		if ra.App == nil {
			var err error
			if im, err = p.ImageManifest(ra.Name); err != nil {
				return nil, err
			}
		}
		return appOf(ra, im)
	}
	return nil, fmt.Errorf("the pod has no app %q: %w", name, errdefs.ErrNotFound)
}
