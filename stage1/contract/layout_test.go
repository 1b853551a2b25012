package contract

import "testing"

// The layout is rkt's, byte for byte (Documentation/design.md, "A pod
// directory"): pods made by one orbit are read by the next, and rkt's
// stage1 images find their files.
func TestLayout(t *testing.T) {
	const d = "/var/lib/orbit/pods/run/u"
	for _, c := range []struct{ got, want string }{
		{PodManifest(d), d + "/pod"},
		{Stage1Manifest(d), d + "/stage1/manifest"},
		{Stage1Rootfs(d), d + "/stage1/rootfs"},
		{Stage1TreeStoreID(d), d + "/stage1TreeStoreID"},
		{AppsInfo(d), d + "/appsinfo"},
		{AppImageManifest(d, "web"), d + "/appsinfo/web/manifest"},
		{AppTreeStoreID(d, "web"), d + "/appsinfo/web/treeStoreID"},
		{PidFile(d), d + "/pid"},
		{PpidFile(d), d + "/ppid"},
		{CgroupsFile(d), d + "/cgroups"},
		{OverlayUpper(d, "t", ""), d + "/overlay/t/upper"},
		{OverlayWork(d, "t", ""), d + "/overlay/t/work"},
		{OverlayUpper(d, "t", "web"), d + "/overlay/t/upper/web"},
		{OverlayWork(d, "t", "web"), d + "/overlay/t/work/web"},
		{OverlayPrepared(d), d + "/overlay-prepared"},
		{NetInfo(d), d + "/net-info.json"},
		{NetNS(d), d + "/netns"},
		{NetworkRecord(d), d + "/network.json"},
		{CNICache(d), d + "/cni-cache"},
		{Stage1AppRootfs("web"), "/opt/stage2/web/rootfs"},
		{Stage1AppManifest("web"), "/opt/stage2/web/manifest"},
		{Stage1AppStatus("web"), "/rkt/status/web"},
		{Stage1EnvDir, "/rkt/env"},
		{Stage1VolumesDir, "/rkt/volumes"},
		{Stage1ResolvConf, "/etc/rkt-resolv.conf"},
		{Stage1Hosts, "/etc/rkt-hosts"},
		{InStage1(d, Stage1AppStatus("web")), d + "/stage1/rootfs/rkt/status/web"},
		{InStage1(d, Stage1AppRootfs("web")), d + "/stage1/rootfs/opt/stage2/web/rootfs"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

// With no pod directory the paths are relative to it, as stage0 records
// its overlay mounts.
func TestLayoutRelative(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{PidFile(""), "pid"},
		{CgroupsFile(""), "cgroups"},
		{Stage1Rootfs(""), "stage1/rootfs"},
		{OverlayUpper("", "t", ""), "overlay/t/upper"},
		{InStage1("", Stage1AppRootfs("web")), "stage1/rootfs/opt/stage2/web/rootfs"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
