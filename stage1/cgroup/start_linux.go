package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// StartIn calls start, which must start cmd (cmd.Start, or a function that
// calls it) on the calling goroutine, so that the new process is in the
// group from its first instruction: a process added after it started could
// fork, allocate or even exit before it joined.
//
//   - In the cgroup2 tree the process is cloned straight into the group
//     (CLONE_INTO_CGROUP, Linux 5.7): StartIn sets cmd.SysProcAttr's
//     UseCgroupFD and CgroupFD.
//   - v1 membership is per thread and inherited by a thread's children, so
//     StartIn pins the goroutine to its thread, moves that thread alone into
//     the group's v1 cgroups, starts the process and moves the thread back.
//     Memory is charged to a process's own cgroup, so nothing the rest of
//     the caller does lands in the group meanwhile.
//
// Where neither applies (a v1 hierarchy in which the caller's own cgroup is
// not visible) the process is added right after it started.
func (g *Group) StartIn(cmd *exec.Cmd, start func() error) error {
	if g.unified != "" {
		fd, err := unix.Open(g.unified, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("cgroup %s: %w", g.path, err)
		}
		defer unix.Close(fd)
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = fd
	}
	var late []string // directories to add the process to after the start
	if len(g.v1) > 0 {
		runtime.LockOSThread()
		back, rest, err := g.moveThread()
		late = rest
		if err != nil {
			// The thread may be in some of the group's cgroups: let it
			// die with the goroutine rather than serve others from there.
			return fmt.Errorf("cgroup %s: %w", g.path, err)
		}
		err = start()
		if berr := moveThreadBack(back); berr != nil {
			return errors.Join(err, fmt.Errorf("cgroup %s: moving the starting thread back: %w", g.path, berr))
		}
		runtime.UnlockOSThread()
		if err != nil {
			return err
		}
	} else if err := start(); err != nil {
		return err
	}
	for _, d := range late {
		err := writeFile(d, "cgroup.procs", strconv.Itoa(cmd.Process.Pid))
		if err != nil && !errors.Is(err, unix.ESRCH) { // ESRCH: already gone
			return fmt.Errorf("cgroup %s: %w", g.path, err)
		}
	}
	return nil
}

// moveThread moves the calling thread into the group's v1 cgroups. It
// returns the directories (tasks files) to move it back to, and the group's
// directories it could not move it into because it would not find its way
// back.
func (g *Group) moveThread() (back, rest []string, err error) {
	f, err := os.Open("/proc/thread-self/cgroup")
	if err != nil {
		return nil, nil, err
	}
	own, err := parseProcCgroup(f)
	f.Close()
	if err != nil {
		return nil, nil, err
	}
	tid := strconv.Itoa(unix.Gettid())
	for _, v := range g.v1 {
		orig, ok := ownDir(v.h, own)
		if !ok {
			rest = append(rest, v.dir)
			continue
		}
		if err := writeFile(v.dir, "tasks", tid); err != nil {
			return back, rest, err
		}
		back = append(back, orig)
	}
	return back, rest, nil
}

func moveThreadBack(dirs []string) error {
	tid := strconv.Itoa(unix.Gettid())
	for _, d := range dirs {
		if err := writeFile(d, "tasks", tid); err != nil {
			return err
		}
	}
	return nil
}

// procCgroup is one line of /proc/<pid>/cgroup: the hierarchy's
// controllers (and name=) and the cgroup's path.
type procCgroup struct {
	keys []string
	path string
}

func parseProcCgroup(r io.Reader) ([]procCgroup, error) {
	var out []procCgroup
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		keys := strings.Split(parts[1], ",")
		slices.Sort(keys)
		out = append(out, procCgroup{keys: keys, path: parts[2]})
	}
	return out, sc.Err()
}

// ownDir finds the directory, under h's mount point, of the caller's cgroup
// in hierarchy h.
func ownDir(h *Hierarchy, own []procCgroup) (string, bool) {
	keys := slices.Clone(h.Controllers)
	if h.Name != "" {
		keys = append(keys, "name="+h.Name)
	}
	if h.unified {
		keys = []string{""} // cgroup2's line is "0::/path"
	}
	slices.Sort(keys)
	for _, c := range own {
		if !slices.Equal(c.keys, keys) {
			continue
		}
		p, root := path.Clean(c.path), path.Clean(h.Root)
		switch {
		case root == "/":
		case p == root:
			p = "/"
		case strings.HasPrefix(p, root+"/"):
			p = strings.TrimPrefix(p, root)
		default:
			return "", false
		}
		return filepath.Join(h.Mountpoint, p), true
	}
	return "", false
}

// Nested returns the layout as seen from the calling process's own cgroup:
// each hierarchy rooted at the group the caller is in, so that groups made
// through it nest below the caller (under the systemd unit that runs
// orbit, say, keeping the unit's limits and its control over the pod).
// Hierarchies the caller's group is not visible in are left out.
func (l *Layout) Nested() (*Layout, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	own, err := parseProcCgroup(f)
	if err != nil {
		return nil, err
	}
	n := &Layout{Mode: l.Mode}
	rebase := func(h *Hierarchy) *Hierarchy {
		dir, ok := ownDir(h, own)
		if !ok {
			return nil
		}
		c := *h
		rel, _ := filepath.Rel(h.Mountpoint, dir)
		c.Mountpoint = dir
		c.Root = path.Join(h.Root, filepath.ToSlash(rel))
		return &c
	}
	for _, h := range l.V1 {
		if c := rebase(h); c != nil {
			n.V1 = append(n.V1, c)
		}
	}
	if l.Unified != nil {
		if n.Unified = rebase(l.Unified); n.Unified != nil {
			// The controllers a group may use are its parent's enabled ones.
			b, err := os.ReadFile(filepath.Join(n.Unified.Mountpoint, "cgroup.controllers"))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, err
			}
			n.Unified.Controllers = strings.Fields(string(b))
		}
	}
	return n, nil
}

// GroupOf returns the cgroups process pid is in, in every hierarchy of the
// layout, as one Group: StartIn on it starts a process beside pid (as
// `orbit enter` does, so the entered command gets the app's limits and
// device policy).
func (l *Layout) GroupOf(pid int) (*Group, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return nil, fmt.Errorf("cgroups of process %d: %w", pid, err)
	}
	defer f.Close()
	entries, err := parseProcCgroup(f)
	if err != nil {
		return nil, fmt.Errorf("cgroups of process %d: %w", pid, err)
	}
	g := &Group{path: "of process " + strconv.Itoa(pid)}
	for _, h := range l.hierarchies() {
		dir, ok := ownDir(h, entries)
		if !ok {
			continue
		}
		g.dirs = append(g.dirs, dir)
		if h == l.Unified {
			g.unified = dir
		} else {
			g.v1 = append(g.v1, v1Dir{h: h, dir: dir})
		}
	}
	if len(g.dirs) == 0 {
		return nil, fmt.Errorf("cgroups of process %d: none visible: %w", pid, errdefs.ErrNotFound)
	}
	return g, nil
}
