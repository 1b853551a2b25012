package stage2

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/inroot"
)

// Launch prepares the current process for app and execs the app's program
// in its place; it returns only on failure, with an error naming the app
// and the failed step (see ExitCode for the matching exit status). The
// order of the steps is documented in Documentation/stage2.md.
//
// Launch changes the calling OS thread for good (its mount and UTS
// namespaces, root, credentials, capabilities, seccomp filter): it is meant
// for a process that does nothing else, such as the launcher started by
// Command.
func Launch(app App) error {
	l := launcher{app: app}
	if err := app.Validate(); err != nil {
		return &launchError{app: app.Name, code: ExitSetupFailed, err: err}
	}
	// Namespaces, root, credentials, capabilities, no_new_privs and seccomp
	// are properties of the thread; the exec must come from the thread that
	// has them all. The thread is never unlocked.
	runtime.LockOSThread()
	return l.run()
}

type launcher struct {
	app  App
	uid  int
	gid  int
	last int // highest capability number of the kernel
	// hold is CAP_SYS_ADMIN when the launcher keeps it (effective and
	// permitted only) to install the app's seccomp filter; keep is what
	// the app ends with. The exec drops hold: a non-root app's sets are
	// recomputed from the file's, and a root app's are limited to its
	// bounding set, which lacks it.
	hold capMask
	keep capMask
}

// fail wraps err as the failure of step.
func (l *launcher) fail(step string, err error) error {
	return &launchError{app: l.app.Name, step: step, code: ExitSetupFailed, err: err}
}

func (l *launcher) run() error {
	parent := os.Getppid()
	if err := l.prepareRoot(); err != nil {
		return err
	}
	if err := l.prepareProcess(); err != nil {
		return err
	}
	if err := l.switchUser(); err != nil {
		return err
	}
	if l.app.DieWithParent {
		// A change of credentials clears the parent-death signal Command
		// asked for; set it again, and make sure the parent did not die
		// in between.
		if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
			return l.fail("parent-death signal", err)
		}
		if os.Getppid() != parent {
			return l.fail("parent-death signal", errors.New("the starting process has exited"))
		}
	}
	return l.exec()
}

// prepareRoot builds the app's mount namespace and enters its root.
func (l *launcher) prepareRoot() error {
	app := &l.app
	// A mount namespace of the thread's own, even when the caller made one
	// already: nothing below may ever change the caller's mounts.
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return l.fail("unshare mount namespace", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return l.fail("make / rslave", err)
	}
	if app.Hostname != "" {
		if err := unix.Unshare(unix.CLONE_NEWUTS); err != nil {
			return l.fail("unshare UTS namespace", err)
		}
		if err := unix.Sethostname([]byte(app.Hostname)); err != nil {
			return l.fail("sethostname "+app.Hostname, err)
		}
	}
	if app.Root == "/" && !app.changesMounts() {
		// Already in the app's root and mount namespace (an enter through
		// nsenter): nothing to switch to.
		return l.enterForeignRoot()
	}
	// The root becomes a mount point of its own: pivot_root needs one, a
	// read-only root needs one, and the app's mounts stay below it.
	if err := unix.Mount(app.Root, app.Root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		if err == unix.EINVAL && !app.changesMounts() {
			// A root in another mount namespace (/proc/<pid>/root of a
			// running app, for `enter`) can not be bound here; it is
			// entered as it is, with its own mounts.
			return l.enterForeignRoot()
		}
		return l.fail("bind-mount root "+app.Root, err)
	}
	root, err := inroot.OpenRoot(app.Root)
	if err != nil {
		return l.fail("open root", err)
	}
	defer root.Close()
	// Device nodes the image ships are not honoured: a world-readable node
	// for a host disk in an image must not open the disk. The app's /dev
	// and volumes are mounts of their own, mounted below, and keep theirs.
	if err := setMountAttrs(root.Fd(), unix.MS_NODEV, false); err != nil {
		return l.fail("make root nodev", err)
	}
	for _, m := range app.Mounts {
		if err := mountInRoot(root, m); err != nil {
			return l.fail("mount "+m.Target, err)
		}
	}
	for _, p := range app.MaskedPaths {
		if err := maskPath(root, p); err != nil {
			return l.fail("mask "+p, err)
		}
	}
	for _, p := range app.ReadOnlyPaths {
		if err := readOnlyPath(root, p); err != nil {
			return l.fail("make "+p+" read-only", err)
		}
	}
	if err := etcFiles(root, app.HostnameFile); err != nil {
		return l.fail("/etc", err)
	}
	if app.ReadOnlyRootfs {
		if err := setMountAttrs(root.Fd(), unix.MS_RDONLY, false); err != nil {
			return l.fail("make root read-only", err)
		}
	}
	if err := l.setOOMScoreAdj(); err != nil {
		return err
	}
	if err := switchRoot(root.Fd()); err != nil {
		return l.fail("enter root "+app.Root, err)
	}
	return l.chdir()
}

// enterForeignRoot chroots into a root that belongs to another mount
// namespace; path lookups from it see that namespace's mounts.
func (l *launcher) enterForeignRoot() error {
	if err := l.setOOMScoreAdj(); err != nil {
		return err
	}
	if err := unix.Chroot(l.app.Root); err != nil {
		return l.fail("chroot "+l.app.Root, err)
	}
	return l.chdir()
}

func (l *launcher) chdir() error {
	wd := l.app.WorkingDir
	if wd == "" {
		wd = "/"
	}
	if err := unix.Chdir(wd); err != nil {
		return l.fail("chdir "+wd, err)
	}
	return nil
}

// setOOMScoreAdj writes the app's OOM score adjustment through the
// launcher's /proc (the app's root may have none).
func (l *launcher) setOOMScoreAdj() error {
	if l.app.OOMScoreAdj == nil {
		return nil
	}
	err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(*l.app.OOMScoreAdj)), 0)
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
		// Lowering the score needs CAP_SYS_RESOURCE, which a container's
		// launcher may lack: the app runs with the score it has, as in
		// rkt, and the failure is said.
		fmt.Fprintf(os.Stderr, "stage2: app %q: warning: oom_score_adj %d not set: %v\n", l.app.Name, *l.app.OOMScoreAdj, err)
		return nil
	}
	if err != nil {
		return l.fail("oom_score_adj", err)
	}
	return nil
}

// prepareProcess resolves the app's user and sets its resource limits,
// inside the new root.
func (l *launcher) prepareProcess() error {
	app := &l.app
	root, err := inroot.OpenRoot("/")
	if err != nil {
		return l.fail("open root", err)
	}
	defer root.Close()
	user, found, err := lookupUser(root, app.User)
	if err != nil {
		return l.fail("user "+app.User, err)
	}
	l.uid = user.UID
	switch {
	case app.Group != "":
		if l.gid, err = lookupGroup(root, app.Group); err != nil {
			return l.fail("group "+app.Group, err)
		}
	case found:
		l.gid = user.GID
	case l.uid == 0:
		l.gid = 0
	default:
		return l.fail("group", fmt.Errorf("none given and user %q has no /etc/passwd entry: %w", app.User, errdefs.ErrInvalid))
	}
	for _, r := range app.Rlimits {
		lim := unix.Rlimit{Cur: r.Soft, Max: r.Hard}
		if err := unix.Prlimit(0, r.Resource, &lim, nil); err != nil {
			return l.fail("rlimit "+strconv.Itoa(r.Resource), err)
		}
	}
	return nil
}

// switchUser sets groups, gid, uid and capabilities, and no_new_privs.
//
// Capabilities follow rkt and the OCI runtimes: App.Capabilities is the
// bounding set of every app, and a root app's effective, permitted,
// inheritable and ambient sets too. A non-root app holds no capability at
// all: it can gain some only by executing a file with capabilities or a
// set-user-ID-root program, and then no more than its bounding set allows
// (and none under no_new_privs).
func (l *launcher) switchUser() error {
	app := &l.app
	l.last = lastCapability()
	root := l.uid == 0
	var keep capMask
	if app.Capabilities != nil {
		var err error
		keep, err = limitBounding(app.Name, maskOf(capabilityNumbers(app.Capabilities.Retain), l.last), l.last)
		if err != nil {
			return l.fail("capabilities", err)
		}
	}
	// Installing a seccomp filter needs CAP_SYS_ADMIN or no_new_privs.
	// no_new_privs is the app's to ask for (the os/linux/no-new-privileges
	// isolator): forced on, it would break every set-user-ID program in
	// the image (ping, su, sudo). So the launcher keeps CAP_SYS_ADMIN in
	// its effective and permitted sets only, never in the inheritable,
	// ambient or (unless retained) bounding sets, until the filter is in;
	// the exec that follows recomputes the sets without it (see
	// holdForFilter). Only a launcher that does not hold CAP_SYS_ADMIN at
	// all falls back to no_new_privs, as systemd does.
	if app.Seccomp != nil && !app.NoNewPrivileges && capsHeld(unix.CAP_SYS_ADMIN) {
		if !root || (app.Capabilities != nil && !keep.has(unix.CAP_SYS_ADMIN)) {
			l.hold = 1 << unix.CAP_SYS_ADMIN
		}
	}
	if !root && l.hold != 0 {
		// Keep the permitted set across the switch to a non-root uid.
		if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
			return l.fail("keep capabilities", err)
		}
	}
	groups := []int{l.gid}
	for _, g := range app.SupplementaryGIDs {
		if g != l.gid && !containsInt(groups, g) {
			groups = append(groups, g)
		}
	}
	// The syscall package applies these to every thread of the process.
	if err := syscall.Setgroups(groups); err != nil {
		return l.fail("setgroups", err)
	}
	if err := syscall.Setresgid(l.gid, l.gid, l.gid); err != nil {
		return l.fail("setresgid "+strconv.Itoa(l.gid), err)
	}
	if err := syscall.Setresuid(l.uid, l.uid, l.uid); err != nil {
		return l.fail("setresuid "+strconv.Itoa(l.uid), err)
	}
	switch {
	case !root:
		// The switch to a non-root uid cleared the effective set (and,
		// without PR_SET_KEEPCAPS, the permitted one); the inheritable
		// and ambient ones are cleared here, so nothing the launcher
		// was started with reaches the app.
		l.keep = 0
		if err := setCapabilities(0, l.hold); err != nil {
			return l.fail("capabilities", err)
		}
		if l.hold != 0 {
			if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
				return l.fail("keep capabilities", err)
			}
		}
	case app.Capabilities != nil:
		l.keep = keep
		if err := setCapabilities(keep, l.hold); err != nil {
			return l.fail("capabilities", err)
		}
	}
	nnp := app.NoNewPrivileges || (app.Seccomp != nil && !capsHeld(unix.CAP_SYS_ADMIN))
	if nnp {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return l.fail("no_new_privs", err)
		}
	}
	return nil
}

// exec finds the program, installs the seccomp filter and execs.
func (l *launcher) exec() error {
	app := &l.app
	prog, err := lookPath(app.Exec[0], envValue(app.Env, "PATH", DefaultPath))
	if err != nil {
		code := ExitNotFound
		if errors.Is(err, unix.EACCES) {
			code = ExitNotExecutable
		}
		return &launchError{app: app.Name, step: "exec " + app.Exec[0], code: code, err: err}
	}
	if err := resetIgnoredSignals(); err != nil {
		return l.fail("reset signals", err)
	}
	// The app gets its standard streams, the files its starter passes on
	// purpose, and nothing else its starter happened to hold open. (Nothing
	// in the app's environment widens this: the environment is the
	// image's to set.)
	// Kept: the sockets (3 on), then, past the spec's descriptor (already
	// closed), the files passed on purpose.
	keep := 3 + app.ListenFDs
	if app.PassFiles > 0 {
		keep = 4 + app.ListenFDs + app.PassFiles
	}
	if err := unix.CloseRange(uint(keep), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil && !errors.Is(err, unix.ENOSYS) {
		return l.fail("close inherited descriptors", err)
	}
	env := SocketEnv(app.Env, app.ListenFDs) // before the filter: it may deny getpid
	if app.Seccomp != nil {
		// The filter goes last, so that none of the launcher's own
		// syscalls above has to be allowed by it.
		filter, err := app.Seccomp.filterProgram()
		if err != nil {
			return l.fail("seccomp", err)
		}
		if filter != nil {
			if err := loadFilter(filter); err != nil {
				return l.fail("seccomp", err)
			}
		}
	}
	err = syscall.Exec(prog, app.Exec, env)
	if l.hold != 0 {
		// The exec failed: give up what was held for the filter before
		// reporting it.
		_ = setCapabilities(l.keep, 0)
	}
	code := ExitNotExecutable
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		code = ExitNotFound
	}
	return &launchError{app: app.Name, step: "exec " + prog, code: code, err: err}
}

// loadFilter installs a seccomp filter on the calling thread.
func loadFilter(raw []bpf.RawInstruction) error {
	filter := make([]unix.SockFilter, len(raw))
	for i, ins := range raw {
		filter[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	_, _, errno := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog)))
	if errno != 0 {
		return errno
	}
	return nil
}

// lookPath finds name the way execvp(3) does: a name with a slash is used
// as it is, others are searched in pathEnv. A file that exists but may not
// be executed is reported (EACCES) when no executable one is found.
func lookPath(name, pathEnv string) (string, error) {
	if strings.Contains(name, "/") {
		return name, checkExecutable(name)
	}
	denied := false
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		err := checkExecutable(p)
		if err == nil {
			return p, nil
		}
		denied = denied || errors.Is(err, unix.EACCES)
	}
	if denied {
		return "", fmt.Errorf("%s: %w", name, unix.EACCES)
	}
	return "", fmt.Errorf("executable file not found in PATH")
}

// checkExecutable reports whether p is a regular file the process may
// execute.
func checkExecutable(p string) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return unix.EACCES
	}
	return unix.Faccessat(unix.AT_FDCWD, p, unix.X_OK, unix.AT_EACCESS)
}

// envValue returns the value of key in env (the last one wins), or def.
func envValue(env []string, key, def string) string {
	v, found := def, false
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v, found = val, true
		}
	}
	if !found {
		return def
	}
	return v
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
