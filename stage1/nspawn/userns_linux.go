package nspawn

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/idmap"
	"github.com/orbit-containers/orbit/stage1/contract"
	"github.com/orbit-containers/orbit/stage1/pod"
)

// A pod run with contract.FlagPrivateUsers is a systemd-nspawn container in
// a user namespace whose IDs 0..Count-1 are the host's Shift..: its root,
// and so its supervisor and apps, are unprivileged users of the host. What
// the pod owns is handed to that range before nspawn starts:
//
//   - its root filesystems: where stage0 could stack the pod's overlays on
//     the store's trees ID-mapped into the range (stage0's mountPod), the
//     image's files are the pod's already; otherwise every file of the
//     stage1 rootfs and of the apps' is chowned by the shift (chownPod),
//     which changes only what is the pod's own: the upper directories of
//     its overlays (a chown copies the file up; the store's tree below is
//     never written) or, without overlayfs, its copies. Either way the
//     files stage0 and stage1 wrote into the pod (status, configuration,
//     empty volumes) are chowned. gc removes them with the pod directory.
//   - its cgroups: the pod's cgroup directories, which stage1 made, and
//     the files in them that let the supervisor make the apps' groups and
//     move processes (handOverCgroups). The pod group's limits and device
//     policy, and everything above it, do not change hands.
//   - host volumes: bound with systemd-nspawn's idmap option where the
//     volume's filesystem allows idmapped mounts, so the host's IDs
//     0..Count-1 are the pod's; otherwise as they are, where the pod sees
//     a host ID outside its range as nobody and can write only what the
//     host has given its range (see Documentation/commands/run.md).

// podUserRange is the pod's user namespace range, if it has one.
func podUserRange(flags *contract.RunOptions) (*contract.UserRange, error) {
	if flags.PrivateUsers == "" {
		return nil, nil
	}
	r, err := contract.ParseUserRange(flags.PrivateUsers)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// shiftID maps a host ID the pod's files carry into the range: the IDs an
// image uses (below Count) are shifted; IDs already in the range are left,
// so that doing it again changes nothing; others are left to show as
// nobody.
func shiftID(r contract.UserRange, id uint32) uint32 {
	if id < r.Count && !r.Contains(id) {
		return r.Shift + id
	}
	return id
}

// chownPod hands the pod's root filesystems to its range: the stage1
// rootfs and the apps' rootfs below it, on whichever of the pod's own
// filesystems they are. The walk does not follow symbolic links and does
// not enter a directory of a filesystem that is not one of those.
func chownPod(p *pod.Pod, r contract.UserRange) error {
	root := p.Stage1Rootfs()
	devs := map[uint64]bool{}
	roots := []string{root}
	for _, ra := range p.Manifest.Apps {
		roots = append(roots, contract.InStage1(p.Dir, contract.Stage1AppRootfs(ra.Name.String())))
	}
	for _, d := range roots {
		var st unix.Stat_t
		if err := unix.Lstat(d, &st); err != nil {
			return fmt.Errorf("handing the pod's files to its user namespace: %w", err)
		}
		devs[st.Dev] = true
	}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(path, &st); err != nil {
			return err
		}
		// Only a directory can be another filesystem's mount point here
		// (nothing but the pod's overlays is mounted before nspawn
		// starts); the files of an overlay whose layers are on different
		// filesystems report their layer's device.
		if d.IsDir() && !devs[st.Dev] {
			return filepath.SkipDir
		}
		return chownShifted(path, &st, r)
	})
	if err != nil {
		return fmt.Errorf("handing the pod's files to its user namespace: %w", err)
	}
	return nil
}

// chownShifted chowns one file by the shift, keeping the set-ID bits a
// chown clears.
func chownShifted(path string, st *unix.Stat_t, r contract.UserRange) error {
	uid, gid := shiftID(r, st.Uid), shiftID(r, st.Gid)
	if uid == st.Uid && gid == st.Gid {
		return nil
	}
	if err := unix.Lchown(path, int(uid), int(gid)); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK && st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
		return unix.Chmod(path, st.Mode&0o7777)
	}
	return nil
}

// handOverCgroups delegates the pod's cgroup directories to the pod's
// root, as cgroups(7) describes delegation: the directory (so it can make
// the apps' groups, whose files it then owns) and the files that move
// processes and enable controllers below (cgroup.procs, cgroup.threads,
// cgroup.subtree_control; tasks in v1). The pod group's own interface
// files (its device policy, any limit on it) keep their owner, and so does
// everything above it: the pod can arrange its apps within its group, not
// widen the group. The directories are the pod's alone
// (contract.CgroupsFile).
func handOverCgroups(p *pod.Pod, r contract.UserRange) error {
	data, err := os.ReadFile(contract.CgroupsFile(p.Dir))
	if err != nil {
		return err
	}
	for _, dir := range strings.Fields(string(data)) {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			continue // the named systemd copy nspawn makes itself
		}
		for _, name := range []string{"", "cgroup.procs", "cgroup.threads", "cgroup.subtree_control", "tasks"} {
			err := os.Lchown(filepath.Join(dir, name), int(r.Shift), int(r.Shift))
			if err != nil && (name == "" || !errors.Is(err, fs.ErrNotExist)) {
				return fmt.Errorf("handing the pod's cgroup to its user namespace: %w", err)
			}
		}
	}
	return nil
}

// userNSArgs are systemd-nspawn's flags for the pod's user namespace: the
// range, and no ownership work of nspawn's own (chownPod did it).
func userNSArgs(r *contract.UserRange) []string {
	if r == nil {
		return nil
	}
	return []string{
		"--private-users=" + strconv.FormatUint(uint64(r.Shift), 10) + ":" + strconv.FormatUint(uint64(r.Count), 10),
		"--private-users-ownership=off",
	}
}

// enterNamespaces are nsenter's flags for the namespaces of the pod whose
// PID 1 is pid: its user namespace too when it has one of its own, so the
// command entered is as unprivileged on the host as the apps.
func enterNamespaces(pid int) []string {
	ns := []string{"--mount", "--uts", "--ipc", "--net", "--pid"}
	var pod, self unix.Stat_t
	if unix.Stat(fmt.Sprintf("/proc/%d/ns/user", pid), &pod) == nil && unix.Stat("/proc/self/ns/user", &self) == nil && pod.Ino != self.Ino {
		ns = append([]string{"--user"}, ns...)
	}
	return ns
}

// inNetns returns start made to run with the calling thread in the network
// namespace at path, so that the process it starts (systemd-nspawn) is
// born there. A pod in a user namespace cannot be handed its network
// namespace by path: nspawn joins it from inside the new user namespace,
// which does not own it, and is refused. Started in it instead, nspawn
// gives the container the namespace it is in.
func inNetns(path string, start func() error) func() error {
	return func() error {
		runtime.LockOSThread()
		self, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			return err
		}
		defer unix.Close(self)
		target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			return err
		}
		defer unix.Close(target)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			return fmt.Errorf("joining the pod's network namespace: %w", err)
		}
		err = start()
		if unix.Setns(self, unix.CLONE_NEWNET) == nil {
			// Only a thread back in its own namespace serves others.
			runtime.UnlockOSThread()
		}
		return err
	}
}

// idmapVolumes ID-maps the binds of the pod's host volumes whose
// filesystem allows it; the others stay as they are, and say so.
func idmapVolumes(pl *plan) {
	var ns *os.File
	for i := range pl.binds {
		b := &pl.binds[i]
		if !strings.HasPrefix(b.target, hostVolumesDir+"/") {
			continue
		}
		var err error
		if ns == nil {
			ns, err = idmap.UserNamespace(idmap.Range{Shift: pl.users.Shift, Count: pl.users.Count})
		}
		if err == nil {
			err = idmap.Supported(b.source, ns)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "stage1: warning: host volume %s cannot be ID-mapped (%v): the pod sees its files' owners less %d, and those outside its range as nobody\n", b.source, err, pl.users.Shift)
			continue
		}
		b.idmap = true
	}
	if ns != nil {
		ns.Close()
	}
}
