package stage0

import (
	"errors"
	"strings"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/contract"
)

const testID = "sha512-0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000abcd"

func testImage(t *testing.T, name string) *schema.ImageManifest {
	t.Helper()
	im := schema.BlankImageManifest()
	im.Name = types.ACIdentifier(name)
	im.Labels = types.Labels{{Name: "os", Value: "linux"}}
	im.App = &types.App{
		Exec:        types.Exec{"/bin/app", "-x"},
		User:        "0",
		Group:       "0",
		Environment: types.Environment{{Name: "A", Value: "image"}, {Name: "B", Value: "image"}},
		MountPoints: []types.MountPoint{{Name: "data", Path: "/data"}, {Name: "logs", Path: "/var/log"}},
	}
	return im
}

func TestBuildPodManifestAppliesOverrides(t *testing.T) {
	im := testImage(t, "example.com/web-server")
	spec := PodSpec{
		Apps: []AppSpec{{
			ImageID:      testID,
			Args:         []string{"--port=80"},
			InheritedEnv: []string{"A=host", "C=host"},
			Env:          []string{"B=flag"},
			User:         "nobody",
		}},
		Volumes: []types.Volume{{Name: "data", Kind: "host", Source: "/srv"}},
	}
	pm, err := BuildPodManifest(spec, []*schema.ImageManifest{im})
	if err != nil {
		t.Fatal(err)
	}
	app := pm.Apps[0]
	if app.Name != "web-server" {
		t.Errorf("app name %q, want web-server", app.Name)
	}
	if got := app.App.Exec; len(got) != 3 || got[2] != "--port=80" {
		t.Errorf("exec %v", got)
	}
	for k, want := range map[string]string{"A": "image", "B": "flag", "C": "host"} {
		if v, _ := app.App.Environment.Get(k); v != want {
			t.Errorf("env %s=%q, want %q", k, v, want)
		}
	}
	if app.App.User != "nobody" || app.App.Group != "0" {
		t.Errorf("user/group %q/%q", app.App.User, app.App.Group)
	}
	// The image manifest is not changed by the overrides.
	if len(im.App.Exec) != 2 || im.App.User != "0" {
		t.Errorf("image manifest modified: %+v", im.App)
	}
	// "logs" has no volume: it gets an implicit empty one; "data" keeps the host one.
	if len(pm.Volumes) != 2 || pm.Volumes[1].Name != "logs" || pm.Volumes[1].Kind != "empty" {
		t.Errorf("volumes %+v", pm.Volumes)
	}
	if v, _ := pm.Annotations.Get(contract.AnnotationMutable); v != "false" {
		t.Errorf("mutable annotation %q", v)
	}
}

func TestBuildPodManifestRejects(t *testing.T) {
	im := testImage(t, "example.com/app")
	noExec := testImage(t, "example.com/noexec")
	noExec.App = nil
	cases := map[string]struct {
		spec   PodSpec
		images []*schema.ImageManifest
	}{
		"no apps":       {PodSpec{}, nil},
		"duplicate":     {PodSpec{Apps: []AppSpec{{ImageID: testID}, {ImageID: testID}}}, []*schema.ImageManifest{im, im}},
		"bad name":      {PodSpec{Apps: []AppSpec{{ImageID: testID, Name: "Bad Name"}}}, []*schema.ImageManifest{im}},
		"bad env":       {PodSpec{Apps: []AppSpec{{ImageID: testID, Env: []string{"NOEQUALS"}}}}, []*schema.ImageManifest{im}},
		"no exec":       {PodSpec{Apps: []AppSpec{{ImageID: testID}}}, []*schema.ImageManifest{noExec}},
		"bad image id":  {PodSpec{Apps: []AppSpec{{ImageID: "sha1-x"}}}, []*schema.ImageManifest{im}},
		"count differs": {PodSpec{Apps: []AppSpec{{ImageID: testID}}}, nil},
	}
	for name, c := range cases {
		if _, err := BuildPodManifest(c.spec, c.images); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
}

func TestDNSConfMode(t *testing.T) {
	mode, resolv, hosts, err := DNSConfig{Servers: []string{"192.0.2.1"}, Search: []string{"example.com"}, Hosts: []string{"192.0.2.9=db"}}.dnsConfMode()
	if err != nil || mode != "resolv=stage0,hosts=stage0" {
		t.Fatalf("mode %q err %v", mode, err)
	}
	if resolv != "# written by orbit\nnameserver 192.0.2.1\nsearch example.com\n" {
		t.Errorf("resolv.conf %q", resolv)
	}
	if want := "192.0.2.9\tdb\n"; len(hosts) < len(want) || hosts[len(hosts)-len(want):] != want {
		t.Errorf("hosts %q", hosts)
	}
	if mode, _, _, _ := (DNSConfig{Servers: []string{"host"}}).dnsConfMode(); mode != "resolv=host,hosts=default" {
		t.Errorf("host mode %q", mode)
	}
	if mode, _, _, _ := (DNSConfig{}).dnsConfMode(); mode != "" {
		t.Errorf("empty mode %q", mode)
	}
	if err := (DNSConfig{Servers: []string{"not-an-ip"}}).Validate(); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("bad server: %v", err)
	}
	if err := (DNSConfig{Hosts: []string{"nohost"}}).Validate(); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("bad hosts entry: %v", err)
	}
}

func TestOverrideIsolatorsByKind(t *testing.T) {
	mk := func(name, value string) types.Isolator {
		var iso types.Isolator
		if err := iso.UnmarshalJSON([]byte(`{"name":"` + name + `","value":` + value + `}`)); err != nil {
			t.Fatal(err)
		}
		return iso
	}
	image := types.Isolators{
		mk(types.LinuxCapabilitiesRetainSetName, `{"set":["CAP_NET_ADMIN"]}`),
		mk(types.LinuxSeccompRemoveSetName, `{"set":["mount"]}`),
		mk(types.LinuxNoNewPrivilegesName, `true`),
	}
	given := types.Isolators{
		mk(types.LinuxCapabilitiesRevokeSetName, `{"set":["CAP_KILL"]}`),
		mk(types.LinuxSeccompRetainSetName, `{"set":["execve"]}`),
	}
	var names []string
	for _, iso := range overrideIsolators(image, given) {
		names = append(names, iso.Name.String())
	}
	want := []string{types.LinuxNoNewPrivilegesName, types.LinuxCapabilitiesRevokeSetName, types.LinuxSeccompRetainSetName}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("isolators %v, want %v", names, want)
	}
}

func TestBuildPodManifestNeedsOSLabel(t *testing.T) {
	im := testImage(t, "example.com/noos")
	im.Labels = nil
	_, err := BuildPodManifest(PodSpec{Apps: []AppSpec{{ImageID: testID}}}, []*schema.ImageManifest{im})
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "missing os label in the image manifest") {
		t.Fatalf("an image without an os label: %v", err)
	}
}
