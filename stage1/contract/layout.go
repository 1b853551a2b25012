package contract

import "path/filepath"

// The pod directory's layout (Documentation/design.md, "A pod directory").
// The names are rkt's, so rkt's stage1 images work unchanged. Each function
// takes the pod directory; given "", it returns the path relative to it.
// Files a flavour keeps for itself (nspawn's nspawn.pid, its /orbit-pod
// directory) and stage0's own record (orbit.json) belong to their owner and
// are not here.

// PodManifest is the appc pod manifest, written by stage0 last: its
// presence says the pod is complete.
func PodManifest(dir string) string { return filepath.Join(dir, "pod") }

// Stage1Manifest is the stage1 image's manifest, whose annotations name the
// entrypoints.
func Stage1Manifest(dir string) string { return filepath.Join(dir, "stage1", "manifest") }

// Stage1Rootfs is the stage1 root filesystem (an overlay mount, or a copy);
// the entrypoints' paths are inside it.
func Stage1Rootfs(dir string) string { return filepath.Join(dir, "stage1", "rootfs") }

// Stage1TreeStoreID names the store's rendered tree the stage1 rootfs comes
// from.
func Stage1TreeStoreID(dir string) string { return filepath.Join(dir, "stage1TreeStoreID") }

// AppsInfo holds a directory per app (AppImageManifest, AppTreeStoreID).
func AppsInfo(dir string) string { return filepath.Join(dir, "appsinfo") }

// AppImageManifest is the manifest of an app's image.
func AppImageManifest(dir, app string) string {
	return filepath.Join(AppsInfo(dir), app, "manifest")
}

// AppTreeStoreID names the store's rendered tree an app's rootfs comes
// from.
func AppTreeStoreID(dir, app string) string {
	return filepath.Join(AppsInfo(dir), app, "treeStoreID")
}

// PidFile is where stage1 records the pod's PID 1 (the PID the enter
// entrypoint is given), in decimal.
func PidFile(dir string) string { return filepath.Join(dir, "pid") }

// PpidFile is where a stage1 that cannot record its PID 1 records that
// process's parent instead, whose only child it is.
func PpidFile(dir string) string { return filepath.Join(dir, "ppid") }

// CgroupsFile is where stage1 records the pod's cgroup directories, one a
// line, in every hierarchy, before anything runs in them: stage0 counts the
// pod alive while any of them holds a process, and gc removes them.
func CgroupsFile(dir string) string { return filepath.Join(dir, "cgroups") }

// OverlayUpper and OverlayWork are the overlayfs upper and work
// directories of a rootfs made from tree treeID: the stage1 rootfs's for
// app "", else the app's.
func OverlayUpper(dir, treeID, app string) string {
	return filepath.Join(dir, "overlay", treeID, "upper", app)
}

// OverlayWork: see OverlayUpper.
func OverlayWork(dir, treeID, app string) string {
	return filepath.Join(dir, "overlay", treeID, "work", app)
}

// OverlayIDMappedLower is where, for a pod run in a user namespace
// (FlagPrivateUsers), the store's tree treeID is mounted ID-mapped into the
// pod's range, read-only, to be its overlays' lower layer: the pod sees the
// tree's files as its own users' without the tree being written.
func OverlayIDMappedLower(dir, treeID string) string {
	return filepath.Join(dir, "overlay", treeID, "lower-idmapped")
}

// OverlayPrepared is present when the pod's root filesystems are overlays.
func OverlayPrepared(dir string) string { return filepath.Join(dir, "overlay-prepared") }

// Paths inside the stage1 rootfs, as seen from its root (the container's
// root under nspawn); InStage1 turns one into a host path.
const (
	// Stage1AppsDir holds each app's directory (Stage1AppRootfs,
	// Stage1AppManifest).
	Stage1AppsDir = "/opt/stage2"
	// Stage1StatusDir holds each app's exit status, decimal, in a file
	// named by the app, written by stage1 when the app exits.
	Stage1StatusDir = "/rkt/status"
	// Stage1EnvDir holds each app's environment, one NAME=VALUE a line, in
	// a file named by the app.
	Stage1EnvDir = "/rkt/env"
	// Stage1VolumesDir holds the pod's "empty" volumes, by name.
	Stage1VolumesDir = "/rkt/volumes"
	// Stage1ResolvConf and Stage1Hosts are written by stage0 for
	// --dns-conf-mode's "stage0" mode, for stage1 to bind over the apps'
	// /etc/resolv.conf and /etc/hosts.
	Stage1ResolvConf = "/etc/rkt-resolv.conf"
	Stage1Hosts      = "/etc/rkt-hosts"
)

// Stage1AppRootfs is an app's root filesystem inside the stage1 rootfs.
func Stage1AppRootfs(app string) string { return filepath.Join(Stage1AppsDir, app, "rootfs") }

// Stage1AppManifest is an app's image manifest inside the stage1 rootfs,
// written by stage0.
func Stage1AppManifest(app string) string { return filepath.Join(Stage1AppsDir, app, "manifest") }

// Stage1AppStatus is an app's exit status file inside the stage1 rootfs.
func Stage1AppStatus(app string) string { return filepath.Join(Stage1StatusDir, app) }

// InStage1 is the host path, in the pod directory dir, of a path inside the
// stage1 rootfs.
func InStage1(dir, path string) string { return filepath.Join(Stage1Rootfs(dir), path) }

// NetNS is the bind mount of the pod's network namespace (a pod in the
// host's network has none); systemd-nspawn is handed its path.
func NetNS(dir string) string { return filepath.Join(dir, "netns") }

// NetworkRecord is orbit's record of the networks a pod is joined to:
// written before any CNI plugin runs and after each, so gc can undo what
// was configured without anything in memory (see stage1/network).
func NetworkRecord(dir string) string { return filepath.Join(dir, "network.json") }

// NetInfo is rkt's net-info.json: one entry per network the pod joined
// (netName, netConf, pluginPath, ifName, ip, args, mask; orbit adds hostIP,
// the host side's address as the pod reaches it), written once the
// networks are set up. It stays after they are torn down, as history.
func NetInfo(dir string) string { return filepath.Join(dir, "net-info.json") }

// CNICache is libcni's cache directory for the pod's attachments.
func CNICache(dir string) string { return filepath.Join(dir, "cni-cache") }
