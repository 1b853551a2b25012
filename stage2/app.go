// Package stage2 starts one app of a pod: it prepares the app's mount
// namespace and root filesystem, switches to the app's user, groups,
// capabilities, limits and seccomp filter, and execs the app's program so
// that the app keeps the launcher's PID.
//
// Stage1 flavours build an App and either run Command (the running binary
// re-executed as the launcher, see Documentation/stage2.md) or call Launch
// in a child process they made themselves.
package stage2

import (
	"fmt"
	"path"
	"strings"

	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// Mount is one filesystem mounted into the app's root before the launcher
// switches into it.
type Mount struct {
	// Source is the host path for bind mounts (as the launcher sees it), or
	// the device / pseudo-filesystem name ("proc", "tmpfs").
	Source string `json:"source"`
	// Target is a path inside App.Root. It is resolved without ever leaving
	// the root: symbolic links in the app's rootfs are followed as if Root
	// were "/".
	Target string `json:"target"`
	// FSType is the filesystem type; "bind" (or MS_BIND in Flags) makes a
	// bind mount.
	FSType string `json:"fstype,omitempty"`
	// Flags are MS_* flags passed to mount(2). For bind mounts, the
	// per-mount ones (MS_NOSUID, MS_NODEV, MS_NOEXEC, the access-time
	// flags) are applied after the bind, recursively when Recursive.
	Flags uintptr `json:"flags,omitempty"`
	// Data is the filesystem-specific option string.
	Data string `json:"data,omitempty"`
	// ReadOnly makes the mount read-only (for binds: after mounting, with a
	// remount; recursively when Recursive is set).
	ReadOnly bool `json:"readOnly,omitempty"`
	// Recursive makes a bind mount recursive (MS_REC).
	Recursive bool `json:"recursive,omitempty"`
	// CreateDir and CreateFile create a missing target (and its missing
	// parent directories) as an empty directory or file. A missing target
	// is an error when neither is set. A bind mount whose source is not a
	// directory gets a file even when CreateDir is set.
	CreateDir  bool `json:"createDir,omitempty"`
	CreateFile bool `json:"createFile,omitempty"`
}

// Rlimit is one resource limit (RLIMIT_* number) set before the exec.
type Rlimit struct {
	Resource int    `json:"resource"`
	Soft     uint64 `json:"soft"`
	Hard     uint64 `json:"hard"`
}

// App is everything the launcher needs to start one app.
type App struct {
	// Name is the app's name in the pod (an appc ACName).
	Name string `json:"name"`
	// Root is the absolute host path of the app's root filesystem.
	Root string `json:"root"`
	// Exec is the program and its arguments. A program without a slash is
	// looked up in the PATH of Env inside Root.
	Exec []string `json:"exec"`
	// Env is the app's complete environment ("K=V"); see Environment.
	Env []string `json:"env,omitempty"`
	// WorkingDir is the directory inside Root the app starts in ("/" when
	// empty).
	WorkingDir string `json:"workingDir,omitempty"`
	// User and Group are appc user and group strings: a number, a name
	// looked up in Root's /etc/passwd and /etc/group, or an absolute path
	// inside Root whose owner (group) is used. Empty means 0, or for Group
	// the user's primary group when User names a passwd entry.
	User  string `json:"user,omitempty"`
	Group string `json:"group,omitempty"`
	// SupplementaryGIDs are the app's groups besides Group.
	SupplementaryGIDs []int `json:"supplementaryGIDs,omitempty"`
	// Mounts are made in order, inside Root, before the root switch.
	Mounts []Mount `json:"mounts,omitempty"`
	// ReadOnlyRootfs remounts Root read-only (its submounts keep their own
	// flags).
	ReadOnlyRootfs bool `json:"readOnlyRootfs,omitempty"`
	// Capabilities, when set, makes the bounding set exactly
	// Capabilities.Retain, and for a root app the effective, permitted and
	// inheritable sets too. Nil leaves the launcher's bounding set. A
	// non-root app holds no capability either way (see
	// Documentation/stage2.md, "Capabilities").
	Capabilities *Capabilities `json:"capabilities,omitempty"`
	// NoNewPrivileges sets PR_SET_NO_NEW_PRIVS.
	NoNewPrivileges bool `json:"noNewPrivileges,omitempty"`
	// Seccomp, when set, is installed as the last step before the exec.
	Seccomp *Seccomp `json:"seccomp,omitempty"`
	// OOMScoreAdj, when set, is written to /proc/self/oom_score_adj.
	OOMScoreAdj *int `json:"oomScoreAdj,omitempty"`
	// Rlimits are set with prlimit(2).
	Rlimits []Rlimit `json:"rlimits,omitempty"`
	// Hostname, when set, is given to the app in a UTS namespace of its
	// own (the launcher unshares one, so the caller's is never touched).
	Hostname string `json:"hostname,omitempty"`
	// HostnameFile, when set, is written to /etc/hostname in the root
	// (the pod's host name, which rkt's --hostname also wrote there).
	HostnameFile string `json:"hostnameFile,omitempty"`
	// MaskedPaths are paths inside Root hidden from the app: /dev/null is
	// bound over files, an empty read-only tmpfs over directories. Missing
	// paths are skipped.
	MaskedPaths []string `json:"maskedPaths,omitempty"`
	// DieWithParent kills the app (SIGKILL) when the process that started
	// it exits, as a flavour whose stage1 process is the pod's lifetime
	// needs. The caller must start the command from a locked OS thread:
	// the kernel ties the signal to the thread that forked.
	DieWithParent bool `json:"dieWithParent,omitempty"`
	// PassFiles is how many descriptors after the spec's (from 4 on when no
	// sockets are passed: the caller's ExtraFiles after the spec) the app
	// is meant to get. Every other descriptor above 2 is closed at the
	// exec.
	PassFiles int `json:"passFiles,omitempty"`
	// ListenFDs is how many socket-activation descriptors the app gets, from
	// 3 on (set by CommandWithSockets); the launcher sets LISTEN_FDS and
	// LISTEN_PID for them, and removes both when there are none, so an
	// image's environment cannot claim any.
	ListenFDs int `json:"listenFDs,omitempty"`
	// ReadOnlyPaths are paths inside Root made read-only (recursively).
	// Missing paths are skipped.
	ReadOnlyPaths []string `json:"readOnlyPaths,omitempty"`
}

// Capabilities is the complete set of capabilities an app keeps.
type Capabilities struct {
	// Retain holds capability names such as "CAP_NET_BIND_SERVICE".
	Retain []string `json:"retain"`
}

// SeccompMode says how a seccomp syscall list is read.
type SeccompMode string

const (
	// SeccompRetain allows only the listed syscalls.
	SeccompRetain SeccompMode = "retain"
	// SeccompRemove denies the listed syscalls and allows all others.
	SeccompRemove SeccompMode = "remove"
)

// Seccomp is a syscall filter.
type Seccomp struct {
	Mode     SeccompMode `json:"mode"`
	Syscalls []string    `json:"syscalls"`
	// Errno is what a denied syscall returns; 0 means EPERM.
	Errno int `json:"errno,omitempty"`
}

// maxErrno is the largest errno a seccomp filter can return
// (SECCOMP_RET_DATA is 16 bits, the kernel caps errno at MAX_ERRNO).
const maxErrno = 4095

// rlimitCount is RLIM_NLIMITS on Linux.
const rlimitCount = 16

// Validate reports whether the app can be launched at all: every check that
// does not need the app's root filesystem. Errors wrap errdefs.ErrInvalid.
func (a *App) Validate() error {
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("app %q: %s: %w", a.Name, fmt.Sprintf(format, args...), errdefs.ErrInvalid)
	}
	if _, err := types.NewACName(a.Name); err != nil {
		return fmt.Errorf("app name %q: %w: %w", a.Name, err, errdefs.ErrInvalid)
	}
	if !path.IsAbs(a.Root) || strings.ContainsRune(a.Root, 0) {
		return invalid("root %q is not an absolute path", a.Root)
	}
	if len(a.Exec) == 0 || a.Exec[0] == "" {
		return invalid("no program to execute")
	}
	for _, s := range a.Exec {
		if strings.ContainsRune(s, 0) {
			return invalid("exec argument %q holds a NUL byte", s)
		}
	}
	for _, kv := range a.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" || strings.ContainsRune(kv, 0) {
			return invalid("environment entry %q is not K=V", kv)
		}
	}
	if a.WorkingDir != "" && !path.IsAbs(a.WorkingDir) {
		return invalid("working directory %q is not absolute", a.WorkingDir)
	}
	for _, g := range a.SupplementaryGIDs {
		if g < 0 || g > maxID {
			return invalid("supplementary gid %d out of range", g)
		}
	}
	for _, m := range a.Mounts {
		if err := m.validate(); err != nil {
			return invalid("mount on %q: %v", m.Target, err)
		}
	}
	for _, p := range append(append([]string(nil), a.MaskedPaths...), a.ReadOnlyPaths...) {
		if !path.IsAbs(p) || strings.ContainsRune(p, 0) {
			return invalid("path %q is not absolute", p)
		}
	}
	if a.Capabilities != nil {
		for _, c := range a.Capabilities.Retain {
			if _, ok := capabilityNumber(c); !ok {
				return invalid("unknown capability %q", c)
			}
		}
	}
	if a.Seccomp != nil {
		if err := a.Seccomp.validate(); err != nil {
			return invalid("seccomp: %v", err)
		}
	}
	if a.OOMScoreAdj != nil && (*a.OOMScoreAdj < -1000 || *a.OOMScoreAdj > 1000) {
		return invalid("oom score adjustment %d not in [-1000, 1000]", *a.OOMScoreAdj)
	}
	for _, r := range a.Rlimits {
		if r.Resource < 0 || r.Resource >= rlimitCount {
			return invalid("unknown resource limit %d", r.Resource)
		}
		if r.Soft > r.Hard {
			return invalid("resource limit %d: soft %d above hard %d", r.Resource, r.Soft, r.Hard)
		}
	}
	if len(a.Hostname) > 64 || strings.ContainsAny(a.Hostname, "\x00/ ") {
		return invalid("hostname %q is not valid", a.Hostname)
	}
	return nil
}

func (m *Mount) validate() error {
	if !path.IsAbs(m.Target) || strings.ContainsRune(m.Target, 0) {
		return fmt.Errorf("target is not an absolute path")
	}
	if m.CreateDir && m.CreateFile {
		return fmt.Errorf("both createDir and createFile")
	}
	if strings.ContainsRune(m.Source, 0) || strings.ContainsRune(m.Data, 0) || strings.ContainsRune(m.FSType, 0) {
		return fmt.Errorf("NUL byte in source, type or data")
	}
	if m.isBind() && !path.IsAbs(m.Source) {
		return fmt.Errorf("bind source %q is not an absolute path", m.Source)
	}
	return nil
}

// msBind is MS_BIND from <linux/mount.h>, here so that validation builds on
// every platform.
const msBind = 0x1000

func (m *Mount) isBind() bool {
	return m.FSType == "bind" || m.Flags&msBind != 0
}

// changesMounts reports whether the app asks for anything to be mounted in
// its root.
func (a *App) changesMounts() bool {
	return len(a.Mounts) > 0 || len(a.MaskedPaths) > 0 || len(a.ReadOnlyPaths) > 0 || a.ReadOnlyRootfs
}
