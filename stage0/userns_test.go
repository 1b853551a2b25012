package stage0

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/orbit-containers/orbit/stage1/contract"
)

// Pods get ranges apart from one another, in the span, and a removed
// pod's range is free again.
func TestPickUserRange(t *testing.T) {
	podsDir := t.TempDir()
	if err := ensurePodsDirs(podsDir); err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]string{}
	for i := 0; i < 50; i++ {
		uuid := "pod-" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		var got contract.UserRange
		err := pickUserRange(context.Background(), podsDir, uuid, func(r contract.UserRange) error {
			got = r
			dir := filepath.Join(podsDir, string(dirPrepare), uuid)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return err
			}
			return writeJSON(filepath.Join(dir, recordFile), podRecord{PrivateUsers: r.String()})
		})
		if err != nil {
			t.Fatal(err)
		}
		if got.Shift < userRangeFirst || got.Shift+got.Count > userRangeEnd || got.Count != contract.UserRangeCount || got.Shift%contract.UserRangeCount != 0 {
			t.Fatalf("range %v is outside the span", got)
		}
		if other, ok := seen[got.Shift]; ok {
			t.Fatalf("pods %s and %s share range %v", other, uuid, got)
		}
		seen[got.Shift] = uuid
	}
	// Every other slot taken: the pick probes past them.
	taken, err := takenUserRanges(podsDir)
	if err != nil || len(taken) != 50 {
		t.Fatalf("takenUserRanges found %d ranges (%v), want 50", len(taken), err)
	}
}

// The same UUID starts its search at the same place; a taken place is
// passed over.
func TestPickUserRangeProbes(t *testing.T) {
	podsDir := t.TempDir()
	if err := ensurePodsDirs(podsDir); err != nil {
		t.Fatal(err)
	}
	var first, second contract.UserRange
	pick := func(out *contract.UserRange, record bool) {
		t.Helper()
		err := pickUserRange(context.Background(), podsDir, "same", func(r contract.UserRange) error {
			*out = r
			if !record {
				return nil
			}
			dir := filepath.Join(podsDir, string(dirRun), "other")
			os.MkdirAll(dir, 0o700)
			return writeJSON(filepath.Join(dir, recordFile), podRecord{PrivateUsers: r.String()})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	pick(&first, true)
	pick(&second, false)
	if first == second {
		t.Errorf("a taken range %v was given again", first)
	}
}
