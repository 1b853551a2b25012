package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// The store is shared by every orbit process on the machine. These tests
// run the same random mix of imports, removals, renders, lookups and
// collections from many goroutines and many processes (this test binary
// run again as a worker) against one store, then check that nothing
// failed and that the index, the blobs and the trees agree.

const (
	workerEnv   = "ORBIT_STORE_TEST_WORKER"
	workerIters = 25
)

func TestMain(m *testing.M) {
	if spec := os.Getenv(workerEnv); spec != "" {
		if err := runWorkerProcess(spec); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fixture is a set of images, written to files so worker processes can
// read them, with what each one's tree must hold.
type fixture struct {
	dir   string
	paths []string
	ids   []string
	files []map[string]string // expected rootfs content of each image's tree
	names []string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir()}
	base := map[string]string{"etc/base": "base", "etc/os-release": "ID=test"}
	images := []testImage{
		{name: "example.com/base", files: base},
		{name: "example.com/app", version: "1.0", deps: []string{"example.com/base"}, files: map[string]string{"bin/app": "app1"}},
		{name: "example.com/app", version: "2.0", deps: []string{"example.com/base"}, files: map[string]string{"bin/app": "app2"}},
		{name: "example.com/solo", files: map[string]string{"solo": strings.Repeat("s", 100000)}},
		{name: "example.com/tiny"},
	}
	for i, ti := range images {
		raw := ti.build(t)
		data := raw
		if i%2 == 0 {
			data = gzipBytes(t, raw)
		}
		p := filepath.Join(f.dir, fmt.Sprintf("%d.aci", i))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{}
		for k, v := range ti.files {
			want[k] = v
		}
		if len(ti.deps) > 0 {
			for k, v := range base {
				want[k] = v
			}
		}
		f.paths = append(f.paths, p)
		f.ids = append(f.ids, idOf(raw))
		f.files = append(f.files, want)
		f.names = append(f.names, ti.name)
	}
	return f
}

// work runs a random mix of store operations. Only ErrNotFound is
// tolerated, and only where another worker may have removed the image.
func work(s *Store, f *fixture, seed uint64, iters int) error {
	rng := rand.New(rand.NewPCG(seed, seed^0x5eed))
	for n := range iters {
		i := rng.IntN(len(f.ids))
		op := rng.IntN(10)
		if err := workOp(s, f, i, op); err != nil {
			return fmt.Errorf("iteration %d, op %d on image %d: %w", n, op, i, err)
		}
	}
	return nil
}

func workOp(s *Store, f *fixture, i, op int) error {
	switch {
	case op < 4:
		data, err := os.ReadFile(f.paths[i])
		if err != nil {
			return err
		}
		img, err := s.Import(bytes.NewReader(data), ImportOptions{Latest: op == 0})
		if err != nil {
			return err
		}
		if img.ID != f.ids[i] {
			return fmt.Errorf("imported as %s, want %s", img.ID, f.ids[i])
		}
	case op < 6:
		if err := s.Remove(context.Background(), f.ids[i], nil); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return err
		}
	case op < 9:
		tr, err := s.Tree(context.Background(), f.ids[i])
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		defer tr.Release()
		for p, want := range f.files[i] {
			got, err := os.ReadFile(filepath.Join(tr.Path, "rootfs", p))
			if err != nil {
				return fmt.Errorf("tree %s: %w", tr.ID, err)
			}
			if string(got) != want {
				return fmt.Errorf("tree %s: %s holds %q", tr.ID, p, got)
			}
		}
	default:
		if _, err := s.List(); err != nil {
			return err
		}
		if _, err := s.FindByName(types.ACIdentifier(f.names[i]), nil); err != nil && !errors.Is(err, errdefs.ErrNotFound) {
			return err
		}
		if _, err := s.GC(context.Background(), nil); err != nil {
			return err
		}
	}
	return nil
}

func runWorkerProcess(spec string) error {
	parts := strings.SplitN(spec, ";", 4)
	if len(parts) != 4 {
		return fmt.Errorf("bad worker spec %q", spec)
	}
	seed, err := strconv.ParseUint(parts[1], 10, 64)
	if err != nil {
		return err
	}
	iters, err := strconv.Atoi(parts[2])
	if err != nil {
		return err
	}
	s, err := Open(parts[0])
	if err != nil {
		return err
	}
	s.tmpMinAge = 0
	f := &fixture{}
	for _, line := range strings.Split(parts[3], "\n") {
		fields := strings.Split(line, "\t")
		if len(fields) != 4 {
			return fmt.Errorf("bad fixture line %q", line)
		}
		want := map[string]string{}
		for _, kv := range strings.Split(fields[3], "\x1f") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				want[k] = v
			}
		}
		f.paths = append(f.paths, fields[0])
		f.ids = append(f.ids, fields[1])
		f.names = append(f.names, fields[2])
		f.files = append(f.files, want)
	}
	return work(s, f, seed, iters)
}

// workerCommand runs this test binary as a worker on the store in dir.
func workerCommand(dir string, f *fixture, seed uint64, iters int) *exec.Cmd {
	var lines []string
	for i := range f.ids {
		var kvs []string
		for k, v := range f.files[i] {
			kvs = append(kvs, k+"="+v)
		}
		lines = append(lines, strings.Join([]string{f.paths[i], f.ids[i], f.names[i], strings.Join(kvs, "\x1f")}, "\t"))
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s;%d;%d;%s", workerEnv, dir, seed, iters, strings.Join(lines, "\n")))
	return cmd
}

func TestConcurrentGoroutinesAndProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	f := newFixture(t)
	dir := filepath.Join(t.TempDir(), "cas")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.tmpMinAge = 0
	const n = 4
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := work(s, f, uint64(g+1), workerIters); err != nil {
				errs <- fmt.Errorf("goroutine %d: %w", g, err)
			}
		}()
	}
	for p := range n {
		cmd := workerCommand(dir, f, uint64(100+p), workerIters)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := cmd.Run(); err != nil {
				errs <- fmt.Errorf("process %d: %v: %s", p, err, stderr.String())
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	checkConsistent(t, s)
	if names := dirNames(t, s.tmpDir()); len(names) != 0 {
		t.Errorf("temp files left: %v", names)
	}
	rep, err := s.GC(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.BlobsRemoved)+len(rep.EntriesRemoved)+len(rep.TempRemoved)+len(rep.TreesKept) != 0 {
		t.Errorf("GC after a clean run found work: %+v", rep)
	}
	if names := dirNames(t, s.treesDir()); len(names) != 0 {
		t.Errorf("trees left after GC: %v", names)
	}
}

// TestKilledProcessesLeaveNothingBroken kills workers at random moments;
// what they leave must never be misread, and GC must clean it all.
func TestKilledProcessesLeaveNothingBroken(t *testing.T) {
	if testing.Short() {
		t.Skip("slow")
	}
	f := newFixture(t)
	dir := filepath.Join(t.TempDir(), "cas")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.tmpMinAge = 0
	for round := range 3 {
		var cmds []*exec.Cmd
		for p := range 4 {
			cmd := workerCommand(dir, f, uint64(1000*round+p), 1000)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			cmds = append(cmds, cmd)
		}
		for i, cmd := range cmds {
			time.Sleep(time.Duration(50+70*i) * time.Millisecond)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
		}
		// Whatever was cut short, every indexed image is whole and every
		// complete tree is right; GC takes the rest.
		images, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		for _, img := range images {
			if err := s.Verify(img.ID); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.GC(t.Context(), nil); err != nil {
			t.Fatal(err)
		}
		checkConsistent(t, s)
		if names := dirNames(t, s.tmpDir()); len(names) != 0 {
			t.Errorf("temp files left after GC: %v", names)
		}
		// And the store still works.
		if err := work(s, f, uint64(round), 10); err != nil {
			t.Fatal(err)
		}
	}
}
