package main

import (
	"reflect"
	"testing"
)

func TestParseAppArgs(t *testing.T) {
	defaults := appFlags{setEnv: []string{"POD=1"}, user: "1000", set: map[string]bool{"set-env": true, "user": true}}
	apps, err := parseAppArgs([]string{
		"a.aci", "--exec=/bin/a", "--set-env=A=1", "--", "x", "--not-a-flag", "---",
		"b.aci", "--user=0", "--name=bee",
		"c.aci", "--", "y", "---",
		"d.aci", "--name=dee", "---",
		"e.aci",
	}, defaults)
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) != 5 || apps[3].flags.name != "dee" || apps[4].image != "e.aci" {
		t.Fatalf("got %d apps: %+v", len(apps), apps)
	}
	a, b, c := apps[0], apps[1], apps[2]
	if a.image != "a.aci" || a.flags.exec != "/bin/a" || !reflect.DeepEqual(a.args, []string{"x", "--not-a-flag"}) {
		t.Errorf("app a: %+v", a)
	}
	if !reflect.DeepEqual(a.flags.setEnv, []string{"POD=1", "A=1"}) || a.flags.user != "1000" {
		t.Errorf("app a did not take the pod-wide flags: %+v", a.flags)
	}
	if b.image != "b.aci" || b.flags.user != "0" || b.flags.name != "bee" || len(b.args) != 0 {
		t.Errorf("app b: %+v", b)
	}
	if c.image != "c.aci" || !reflect.DeepEqual(c.args, []string{"y"}) {
		t.Errorf("app c: %+v", c)
	}
}

func TestParseAppArgsErrors(t *testing.T) {
	for _, args := range [][]string{
		{"a.aci", "--no-such-flag"},
		{"a.aci", "--memory"},
		{"--exec=/x", "a.aci"},
	} {
		if _, err := parseAppArgs(args, appFlags{}); err == nil {
			t.Errorf("parseAppArgs(%q) accepted", args)
		}
	}
}

func TestAppSpecIsolatorsAndMounts(t *testing.T) {
	a := appArg{image: "x", flags: appFlags{
		memory: "64M", cpu: "500m", cpuShares: "512", oomScoreAdj: "100",
		capsRemove: []string{"chown"}, seccomp: "mode=remove,errno=EPERM,mkdir",
		mounts: []string{"volume=data,target=/data"}, supplementaryGIDs: []string{"10", "20"},
	}}
	spec, err := a.appSpec("id")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, iso := range spec.Isolators {
		names[iso.Name.String()] = true
	}
	for _, want := range []string{"resource/memory", "resource/cpu", "os/linux/cpu-shares", "os/linux/oom-score-adj", "os/linux/capabilities-remove-set", "os/linux/seccomp-remove-set"} {
		if !names[want] {
			t.Errorf("isolator %s missing: %v", want, names)
		}
	}
	if len(spec.Mounts) != 1 || spec.Mounts[0].Volume != "data" || spec.Mounts[0].Path != "/data" {
		t.Errorf("mounts %+v", spec.Mounts)
	}
	if !reflect.DeepEqual(spec.SupplementaryGIDs, []int{10, 20}) {
		t.Errorf("gids %v", spec.SupplementaryGIDs)
	}
	for _, bad := range []appFlags{
		{memory: "lots"},
		{capsRetain: []string{"CAP_CHOWN"}, capsRemove: []string{"CAP_KILL"}},
		{seccomp: "mode=maybe,read"},
		{mounts: []string{"volume=data"}},
		{supplementaryGIDs: []string{"x"}},
		{oomScoreAdj: "5000"},
	} {
		if _, err := (appArg{image: "x", flags: bad}).appSpec("id"); err == nil {
			t.Errorf("appSpec accepted %+v", bad)
		}
	}
}

func TestDeprecatedCapFlagsAddUp(t *testing.T) {
	apps, err := parseAppArgs([]string{"a.aci", "--caps-retain=CAP_KILL", "--cap-retain=CAP_CHOWN"}, appFlags{})
	if err != nil {
		t.Fatal(err)
	}
	if got := apps[0].flags.capsRetain; !reflect.DeepEqual(got, []string{"CAP_KILL", "CAP_CHOWN"}) {
		t.Fatalf("caps %v", got)
	}
}
