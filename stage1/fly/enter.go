package fly

import (
	"fmt"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/pod"
	"github.com/orbit-containers/orbit/stage2"
)

// Enter is the enter entrypoint: it runs a command as the app's user, in
// the app's root (seen through /proc/<pid>/root, which carries the app's
// mounts) with the app's environment, and exits with its status.
func Enter(args []string) int { return pod.Main("stage1 fly enter", args, enter) }

func enter(args []string) (int, error) {
	e, err := contract.ParseEnter(args)
	if err != nil {
		return 0, err
	}
	p, err := pod.Load(".", "")
	if err != nil {
		return 0, err
	}
	a, err := enteredApp(p, e.App)
	if err != nil {
		return 0, err
	}
	// The pod's pid is the launcher's until it has exec'd the app.
	if err := pod.WaitAppExec(e.Pid, 5*time.Second); err != nil {
		return 0, err
	}
	env, err := pod.ProcessEnv(e.Pid)
	if err != nil {
		return 0, err
	}
	cmd, err := stage2.Command(stage2.App{
		Name:              e.App,
		Root:              fmt.Sprintf("/proc/%d/root", e.Pid),
		Exec:              e.Command,
		Env:               pod.EnteredEnv(env),
		User:              a.User,
		Group:             a.Group,
		SupplementaryGIDs: a.SupplementaryGIDs,
	})
	if err != nil {
		return 0, err
	}
	return pod.RunEntered(cmd, cmd.Start)
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
