package stage0

import (
	"encoding/json"
	"os"
	"reflect"
	"testing"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/stage1/contract"
)

func summaryTestManifest(t *testing.T, apps ...string) []byte {
	t.Helper()
	pm := schema.BlankPodManifest()
	for i, a := range apps {
		name := types.ACIdentifier("example.com/" + a)
		id, err := types.NewHash(fakeID(i + 1))
		if err != nil {
			t.Fatal(err)
		}
		pm.Apps = append(pm.Apps, schema.RuntimeApp{
			Name:  *types.MustACName(a),
			Image: schema.RuntimeImage{Name: &name, ID: *id, Labels: types.Labels{{Name: "version", Value: "1." + a}}},
		})
	}
	data, err := json.Marshal(pm)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestListSummaryIsDerived: a listing's statuses come from the pod's
// summary when it is current, equal what the pod manifest says, and a
// summary that is missing, corrupt or older than the manifest is never
// trusted over it.
func TestListSummaryIsDerived(t *testing.T) {
	p, podsDir := newPreparingPod(t)
	if err := os.WriteFile(contract.PodManifest(p.Path()), summaryTestManifest(t, "one"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.ToPrepared(); err != nil {
		t.Fatal(err)
	}
	listOne := func() *Status {
		t.Helper()
		pods, err := List(podsDir)
		if err != nil || len(pods) != 1 {
			t.Fatalf("List: %v, %v", pods, err)
		}
		sts, errs := ReadStatuses(pods)
		if errs[0] != nil {
			t.Fatal(errs[0])
		}
		full, err := pods[0].ReadStatus()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(sts[0].Apps, full.Apps) || !sts[0].CreatedAt.Equal(full.CreatedAt) || sts[0].State != full.State {
			t.Fatalf("from the summary %+v, from the pod %+v", sts[0], full)
		}
		return sts[0]
	}
	sumPath := p.File(summaryFile)
	if _, err := os.Stat(sumPath); err == nil {
		t.Fatal("summary written before any listing (the test wrote the manifest itself)")
	}
	st := listOne()
	if _, err := os.Stat(sumPath); err != nil {
		t.Fatalf("a listing left no summary for next time: %v", err)
	}
	if len(st.Apps) != 1 || st.Apps[0].ImageName != "example.com/one:1.one" || st.Manifest != nil {
		t.Fatalf("status %+v", st)
	}
	listOne() // from the summary now

	// The manifest changes (a sandbox's app add): the summary is stale.
	if err := os.WriteFile(contract.PodManifest(p.Path())+".new", summaryTestManifest(t, "one", "two"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(contract.PodManifest(p.Path())+".new", contract.PodManifest(p.Path())); err != nil {
		t.Fatal(err)
	}
	if st := listOne(); len(st.Apps) != 2 {
		t.Fatalf("stale summary trusted: %+v", st.Apps)
	}
	// A corrupt summary is ignored.
	if err := os.WriteFile(sumPath, []byte(`{"v":1,"apps":[{"name":"forged"`), 0o644); err != nil {
		t.Fatal(err)
	}
	if st := listOne(); len(st.Apps) != 2 || st.Apps[0].Name != "one" {
		t.Fatalf("corrupt summary trusted: %+v", st.Apps)
	}
}
