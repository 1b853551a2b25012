package stage0

import (
	"errors"
	"strings"
	"testing"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/stage1/builtin"
)

// FuzzPodManifest feeds hand-written pod manifests to the parser and the
// checks stage0 runs before a pod is made: neither may panic, a refusal is
// one line wrapping errdefs.ErrInvalid, and what is accepted has apps.
func FuzzPodManifest(f *testing.F) {
	for _, seed := range []string{
		`{"acKind":"PodManifest","acVersion":"0.8.11","apps":[{"name":"a","image":{"name":"example.com/a"}}]}`,
		`{"acKind":"PodManifest","acVersion":"0.8.11","apps":[]}`,
		`{"acKind":"PodManifest","acVersion":"0.8.11","apps":[{"name":"a","image":{"name":"example.com/a"},"mounts":[{"volume":"v","path":"/v"}]}],"volumes":[{"name":"v","kind":"empty"}]}`,
		`{"acKind":"PodManifest","acVersion":"0.8.11","apps":[{"name":"a","image":{"name":"example.com/a"},"mounts":[{"volume":"nothere","path":"/v"}]}]}`,
		`{"acKind":"PodManifest","acVersion":"0.8.11","apps":[{"name":"a","image":{"name":"example.com/a"},"app":{"exec":["/bin/true"],"user":"0","group":"0","isolators":[{"name":"os/linux/capabilities-retain-set","value":{"set":["CAP_BOGUS"]}}]}}]}`,
		`{"acKind":"PodManifest","acVersion":"0.8.11","apps":[{"name":"a","image":{"name":"example.com/a"},"app":{"exec":["/bin/true"],"user":"0","group":"0","isolators":[{"name":"resource/memory","value":{"limit":"99999999999999999999G"}}]}}]}`,
		`{"acKind":"PodManifest","acVersion":"0.8.11","apps":[{"name":"a","image":{"name":"example.com/a"},"app":{"exec":["/bin/true"],"user":"0","group":"0","isolators":[{"name":"resource/cpu","value":{"limit":"0"}}]}}]}`,
		`{"acKind":"PodManifest","acVersion":"0.8.11","apps":[{"name":"a","image":{"name":"example.com/a"}},{"name":"b","image":{"name":"example.com/b"}}]}`,
		"{\n  \"apps\": [ ,\n  ]\n}",
		`{"acKind":"ImageManifest"}`,
		`null`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		pm, err := ParsePodManifest(data)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		for _, fl := range []builtin.Flavour{0, builtin.Fly, builtin.Nspawn} {
			if err := ValidatePodManifest(pm, fl); err != nil {
				checkRefusal(t, err)
				continue
			}
			if len(pm.Apps) == 0 || fl == builtin.Fly && len(pm.Apps) != 1 {
				t.Fatalf("accepted a pod of %d apps for %v", len(pm.Apps), fl)
			}
		}
	})
}

func checkRefusal(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("refusal %q does not wrap ErrInvalid", err)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Fatalf("refusal is not one line: %q", err)
	}
}
