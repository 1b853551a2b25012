package nspawn

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/stage1/pod"
	"github.com/orbit-containers/orbit/stage2"
)

// Enter is the enter entrypoint. It finds the app's process among the
// supervisor's children and runs the command in that process's namespaces
// (its mount namespace holds the app's root and mounts), as the app's user
// with the app's environment. util-linux's nsenter does the joining, which
// a multi-threaded Go program cannot do for mount namespaces itself.
func Enter(args []string) int {
	code, err := enter(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "stage1 nspawn enter: %v\n", err)
		return 254
	}
	return code
}

func enter(args []string) (int, error) {
	fs := flag.NewFlagSet("nspawn enter", flag.ContinueOnError)
	pid := fs.Int("pid", 0, "")
	appName := fs.String("appname", "", "")
	if err := fs.Parse(args); err != nil {
		return 0, err
	}
	command := fs.Args()
	if len(command) == 0 {
		command = []string{"/bin/sh"}
	}
	if *pid <= 0 {
		return 0, fmt.Errorf("--pid is required")
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return 0, fmt.Errorf("nsenter is not installed; on Debian it comes with util-linux")
	}
	p, err := pod.Load(".", "")
	if err != nil {
		return 0, err
	}
	var user, group string
	for _, ra := range p.Manifest.Apps {
		if ra.Name.String() == *appName && ra.App != nil {
			user, group = ra.App.User, ra.App.Group
		}
	}
	// A pod that has just started may not have started its app yet.
	var appPid int
	for wait := 0; ; wait++ {
		if appPid, err = findApp(*pid, *appName); err == nil {
			break
		}
		if wait == 50 {
			return 0, err
		}
		time.Sleep(100 * time.Millisecond)
	}
	env, err := pod.ProcessEnv(appPid)
	if err != nil {
		return 0, err
	}
	cmd, err := stage2.Command(stage2.App{Name: *appName, Root: "/", Exec: command, Env: env, User: user, Group: group})
	if err != nil {
		return 0, err
	}
	// Run the launcher through nsenter. Inside the app's mount namespace
	// the launcher binary is reached through the supervisor's root
	// (/proc/1/root is the container's root, the stage1 rootfs).
	launcherArgs := append([]string(nil), cmd.Args[1:]...)
	cmd.Path = nsenter
	cmd.Args = append([]string{"nsenter", "--target=" + strconv.Itoa(appPid), "--mount", "--uts", "--ipc", "--net", "--pid", "--", "/proc/1/root/stage2/launch"}, launcherArgs...)
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	signal.Ignore(unix.SIGINT, unix.SIGQUIT) // the terminal's signals go to the command
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
	err = cmd.Wait()
	if cmd.ProcessState == nil {
		return 0, err
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return cmd.ProcessState.ExitCode(), nil
}

// findApp returns the host PID of the app named name: the supervisor's
// child whose environment carries AC_APP_NAME=name. The supervisor is a Go
// program, so its children hang off any of its threads.
func findApp(supervisorPid int, name string) (int, error) {
	want := []byte("AC_APP_NAME=" + name)
	for _, child := range children(supervisorPid) {
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", child))
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if bytes.Equal(kv, want) {
				return child, nil
			}
		}
	}
	return 0, fmt.Errorf("app %q is not running in the pod", name)
}
