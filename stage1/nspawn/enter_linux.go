package nspawn

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/orbit-containers/orbit/stage1/cgroup"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/pod"
	"github.com/orbit-containers/orbit/stage1/supervisor"
	"github.com/orbit-containers/orbit/stage2"
)

// Enter is the enter entrypoint. It runs a command beside a running app,
// isolated as the app is: the stage2 launcher is started in the
// container's namespaces (joined through util-linux's nsenter, which a
// multi-threaded Go program cannot do for mount namespaces itself) and in
// the app's cgroups, takes the app's root through /proc/<pid>/root (which
// carries the app's mounts), and applies the app's user, groups,
// capabilities, seccomp filter and no_new_privs before it execs the
// command with the app's environment. The launcher binary is the stage1
// rootfs's, which no app can reach or change.
func Enter(args []string) int { return pod.Main("stage1 nspawn enter", args, enter) }

func enter(args []string) (int, error) {
	e, err := contract.ParseEnter(args)
	if err != nil {
		return 0, err
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return 0, fmt.Errorf("nsenter is not installed; on Debian it comes with util-linux")
	}
	p, err := pod.Load(".", "")
	if err != nil {
		return 0, err
	}
	spec, err := appSpec(p, e.App)
	if err != nil {
		return 0, err
	}
	// A pod that has just started may not have started its app yet.
	var inner, appPid int
	for wait := 0; ; wait++ {
		if inner, appPid, err = findApp(p, e.Pid, e.App); err == nil {
			break
		}
		if wait == 50 {
			return 0, err
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := pod.WaitAppExec(appPid, 5*time.Second); err != nil {
		return 0, fmt.Errorf("app %q: %w", e.App, err)
	}
	a := spec.App
	cmd, err := stage2.Command(stage2.App{
		Name:              a.Name,
		Root:              fmt.Sprintf("/proc/%d/root", inner),
		Exec:              e.Command,
		Env:               pod.EnteredEnv(a.Env),
		OOMScoreAdj:       a.OOMScoreAdj,
		Rlimits:           a.Rlimits,
		User:              a.User,
		Group:             a.Group,
		SupplementaryGIDs: a.SupplementaryGIDs,
		Capabilities:      a.Capabilities,
		Seccomp:           a.Seccomp,
		NoNewPrivileges:   a.NoNewPrivileges,
	})
	if err != nil {
		return 0, err
	}
	launcherArgs := append([]string(nil), cmd.Args[1:]...)
	cmd.Path = nsenter
	cmd.Args = append(append([]string{"nsenter", "--target=" + strconv.Itoa(e.Pid)}, enterNamespaces(e.Pid)...), "--")
	cmd.Args = append(append(cmd.Args, "/stage2/launch"), launcherArgs...)
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	start := cmd.Start
	if l, err := cgroup.Detect(); err == nil {
		if g, err := l.GroupOf(appPid); err == nil {
			start = func() error { return g.StartIn(cmd, cmd.Start) }
		}
	}
	return pod.RunEntered(cmd, start)
}

// appSpec reads the app's launch description from the supervisor's
// configuration in the stage1 rootfs.
func appSpec(p *pod.Pod, name string) (*supervisor.AppSpec, error) {
	data, err := os.ReadFile(filepath.Join(p.Stage1Rootfs(), supervisorConfig))
	if err != nil {
		return nil, fmt.Errorf("reading the pod's configuration: %w", err)
	}
	var cfg supervisor.Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("the pod's configuration: %w", err)
	}
	for i := range cfg.Apps {
		if cfg.Apps[i].App.Name == name {
			return &cfg.Apps[i], nil
		}
	}
	if cfg.Mutable {
		// An app added to a sandbox: its spec is beside the configuration.
		if data, err := os.ReadFile(filepath.Join(p.Stage1Rootfs(), appSpecDir, name+".json")); err == nil {
			var spec supervisor.AppSpec
			if err := json.Unmarshal(data, &spec); err != nil {
				return nil, fmt.Errorf("app %q: %w", name, err)
			}
			return &spec, nil
		}
	}
	return nil, fmt.Errorf("the pod has no app %q", name)
}

// innerPid is a process's PID in the innermost PID namespace it is in (the
// container's), from the NSpid line of its status.
func innerPid(pid int) (int, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return strconv.Atoi(f[len(f)-1])
			}
		}
	}
	return 0, fmt.Errorf("process %d: no NSpid in its status", pid)
}

// findApp finds the app's process: the supervisor records its PID (in the
// container's PID namespace) in <contract.Stage1StatusDir>/<app>.pid, and the host PID is
// the supervisor's child whose innermost PID that is. Nothing the app
// itself controls (its environment, its command line) is consulted.
func findApp(p *pod.Pod, supervisorPid int, name string) (inner, host int, err error) {
	data, err := os.ReadFile(contract.InStage1(p.Dir, contract.Stage1AppStatus(name)) + ".pid")
	if err != nil {
		return 0, 0, fmt.Errorf("app %q is not running in the pod", name)
	}
	inner, err = strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || inner <= 0 {
		return 0, 0, fmt.Errorf("app %q: bad pid record %q", name, data)
	}
	for _, child := range children(supervisorPid) {
		if n, err := innerPid(child); err == nil && n == inner {
			return inner, child, nil
		}
	}
	return 0, 0, fmt.Errorf("app %q is not running in the pod", name)
}
