package tests

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/rand"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The OCI pull benchmark's image: three layers of about 33 MB each
// unpacked, the lowest with busybox, each with incompressible random data
// (as binaries and compressed assets are) and log-like text that gzip
// shrinks; about 100 MB unpacked and 40 MB compressed in all.
const (
	benchOCIRandomPerLayer = 11 << 20
	benchOCITextPerLayer   = 22 << 20
	// benchOCIMaxRounds caps the rounds (b.N) of this benchmark: a round
	// pulls 100 MB three times over, on a machine shared with others.
	benchOCIMaxRounds = 10
)

// benchOCILayer writes a layer of files into a temp file and returns it,
// gzip-compressed at the fastest level (the wire format, not what is
// measured).
func benchOCILayer(b *testing.B, files func(tw *tar.Writer)) v1.Layer {
	b.Helper()
	path := filepath.Join(b.TempDir(), "layer.tar")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	tw := tar.NewWriter(bw)
	files(tw)
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	l, err := tarball.LayerFromFile(path, tarball.WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// benchOCIEntry writes one file of size bytes read from r.
func benchOCIEntry(b *testing.B, tw *tar.Writer, name string, size int64, r io.Reader) {
	b.Helper()
	hdr := &tar.Header{Name: name, Mode: 0o644, Typeflag: tar.TypeReg, Size: size, ModTime: time.Unix(1700000000, 0)}
	if strings.HasSuffix(name, "/") {
		hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeDir, 0o755, 0
	}
	if err := tw.WriteHeader(hdr); err != nil {
		b.Fatal(err)
	}
	if r != nil {
		if _, err := io.CopyN(tw, r, size); err != nil {
			b.Fatal(err)
		}
	}
}

// benchOCIData writes layer n's data files.
func benchOCIData(b *testing.B, tw *tar.Writer, n int) {
	dir := fmt.Sprintf("data%d/", n)
	benchOCIEntry(b, tw, dir, 0, nil)
	// A few files of each kind, as a real layer has.
	for i := range 4 {
		benchOCIEntry(b, tw, fmt.Sprintf("%srandom-%d.bin", dir, i), benchOCIRandomPerLayer/4, rand.Reader)
		benchOCIEntry(b, tw, fmt.Sprintf("%slog-%d.txt", dir, i), benchOCITextPerLayer/4, &benchText{n: n*1000000 + i*100000})
	}
}

// benchOCIBusybox writes the busybox root filesystem into a layer.
func benchOCIBusybox(b *testing.B, tw *tar.Writer) {
	root := busyboxRootfs(b)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = rel
		if d.IsDir() {
			hdr.Name += "/"
		}
		if info.Mode()&fs.ModeSymlink != 0 {
			if hdr.Linkname, err = os.Readlink(p); err != nil {
				return err
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// benchOCIMedian is the median of durations, in nanoseconds.
func benchOCIMedian(d []time.Duration) float64 {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return float64(s[len(s)/2].Nanoseconds())
	}
	return float64((s[len(s)/2-1] + s[len(s)/2]).Nanoseconds()) / 2
}

// benchOCIRounds runs the sides rounds times, interleaved and rotating who
// goes first, with between (untimed) after every round, and returns each
// side's median.
func benchOCIRounds(rounds int, between func(), sides ...benchSide) []float64 {
	times := make([][]time.Duration, len(sides))
	for i := range rounds {
		for k := range sides {
			j := (i + k) % len(sides)
			start := time.Now()
			sides[j].do(i)
			times[j] = append(times[j], time.Since(start))
		}
		between()
	}
	med := make([]float64, len(sides))
	for j := range sides {
		med[j] = benchOCIMedian(times[j])
	}
	return med
}

// BenchmarkOCIPull times pulling a 3-layer, 100 MB image from a local
// registry (Debian's docker-registry on 127.0.0.1 in a network namespace
// the benchmark makes) and storing it, by `orbit fetch` (download, digest
// checks, each layer extracted into its layer tree, the image indexed),
// against `skopeo copy docker://... oci:DIR` (download and digest checks
// only: it keeps compressed blobs) and `podman pull` (download and
// unpacking into its overlay storage, under a storage root and
// registries.conf of its own). Then it times the second image, which
// shares the base layer, pulled while the first is stored. Each operation
// starts from a store without the image (removed, untimed, after every
// round). Reported, as medians of interleaved rounds:
//
//	ns/op, skopeo-ns/op, podman-ns/op     the first image
//	x-vs-skopeo, x-vs-podman              orbit's median over the peer's
//	second-ns/op, podman-second-ns/op     the second image, base layer stored
//	x-second-vs-podman
func BenchmarkOCIPull(b *testing.B) {
	skopeo := requireTool(b, "skopeo", "skopeo") // pushes the image, and a peer
	podman, err := exec.LookPath("podman")
	if err != nil {
		b.Skipf("podman is needed as the peer: %v", err)
	}
	base := benchOCILayer(b, func(tw *tar.Writer) { benchOCIBusybox(b, tw); benchOCIData(b, tw, 1) })
	mid := benchOCILayer(b, func(tw *tar.Writer) { benchOCIData(b, tw, 2) })
	top := benchOCILayer(b, func(tw *tar.Writer) { benchOCIData(b, tw, 3) })
	second := benchOCILayer(b, func(tw *tar.Writer) {
		benchOCIEntry(b, tw, "second/", 0, nil)
		benchOCIEntry(b, tw, "second/random.bin", 4<<20, rand.Reader)
	})
	img := ociLayersImage(b, "true", base, mid, top)
	img2 := ociLayersImage(b, "true", base, second)
	reg := ociStartRegistry(b, ociRegistryOptions{})
	reg.push(b, ociWriteLayout(b, img, "v1"), "bench/big:v1")
	reg.push(b, ociWriteLayout(b, img2, "v1"), "bench/second:v1")
	ref1, ref2 := reg.host+"/bench/big:v1", reg.host+"/bench/second:v1"
	if m, err := img.Manifest(); err == nil {
		var size int64
		for _, l := range m.Layers {
			size += l.Size
		}
		b.Logf("image: %d layers, %.1f MB compressed", len(m.Layers), float64(size)/1e6)
	}

	inNS := func(name string, args ...string) {
		b.Helper()
		benchExec(b, "ip", append([]string{"netns", "exec", reg.ns, name}, args...)...)
	}
	e := newEnv(b)
	orbitPull := func(ref string) func(int) {
		return func(int) {
			r := reg.orbit(e, "fetch", "--insecure-options=image,http", "--pull-policy=update", "docker://"+ref)
			if r.Code != 0 {
				b.Fatalf("orbit fetch: %s", r)
			}
		}
	}
	orbitRm := func(ref string) {
		for _, line := range strings.Split(benchOrbit(b, e, "image", "list", "--no-legend", "--full"), "\n") {
			if f := strings.Fields(line); len(f) > 1 && strings.Contains(line, ref) {
				benchOrbit(b, e, "image", "rm", f[0])
			}
		}
	}
	ociDir := filepath.Join(b.TempDir(), "oci")
	skopeoPull := func(ref string) func(int) {
		return func(int) {
			inNS(skopeo, "copy", "--quiet", "--src-tls-verify=false", "docker://"+ref, "oci:"+ociDir+":"+filepath.Base(ref))
		}
	}
	// podman with a storage root and a registries.conf of its own, so the
	// host's images and configuration are left alone.
	proot := b.TempDir()
	regConf := filepath.Join(proot, "registries.conf")
	writeFile(b, regConf, fmt.Sprintf("unqualified-search-registries = []\n[[registry]]\nlocation = %q\ninsecure = true\n", reg.host))
	storageConf := filepath.Join(proot, "storage.conf")
	writeFile(b, storageConf, fmt.Sprintf("[storage]\ndriver = \"overlay\"\nrunroot = %q\ngraphroot = %q\n", filepath.Join(proot, "run"), filepath.Join(proot, "root")))
	podmanArgs := func(args ...string) []string {
		return append([]string{"--root", filepath.Join(proot, "root"), "--runroot", filepath.Join(proot, "run"),
			"--storage-driver", "overlay", "--events-backend", "none", "--cgroup-manager", "cgroupfs"}, args...)
	}
	podmanEnv := []string{"CONTAINERS_REGISTRIES_CONF=" + regConf, "CONTAINERS_STORAGE_CONF=" + storageConf}
	podmanRun := func(args ...string) {
		b.Helper()
		cmd := exec.Command("ip", append([]string{"netns", "exec", reg.ns, podman}, podmanArgs(args...)...)...)
		cmd.Env = append(os.Environ(), podmanEnv...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	b.Cleanup(func() {
		cmd := exec.Command(podman, podmanArgs("system", "reset", "--force")...)
		cmd.Env = append(os.Environ(), podmanEnv...)
		cmd.Run()
	})
	podmanPull := func(ref string) func(int) {
		return func(int) { podmanRun("pull", "--quiet", ref) }
	}
	rounds := min(b.N, benchOCIMaxRounds)
	// Warm up untimed: the first of each also creates its store.
	orbitPull(ref1)(0)
	podmanPull(ref1)(0)
	skopeoPull(ref1)(0)
	clean := func() {
		orbitRm("bench/big")
		podmanRun("rmi", "--all", "--force")
		os.RemoveAll(ociDir)
	}
	clean()
	med := benchOCIRounds(rounds, clean,
		benchSide{"orbit", orbitPull(ref1)},
		benchSide{"skopeo", skopeoPull(ref1)},
		benchSide{"podman", podmanPull(ref1)},
	)
	b.ReportMetric(med[0], "ns/op")
	b.ReportMetric(med[1], "skopeo-ns/op")
	b.ReportMetric(med[2], "podman-ns/op")
	b.ReportMetric(med[0]/med[1], "x-vs-skopeo")
	b.ReportMetric(med[0]/med[2], "x-vs-podman")

	// The second image, with the first (and so the base layer) stored.
	orbitPull(ref1)(0)
	podmanPull(ref1)(0)
	med2 := benchOCIRounds(rounds, func() {
		orbitRm("bench/second")
		podmanRun("rmi", "--force", ref2)
	},
		benchSide{"orbit", orbitPull(ref2)},
		benchSide{"podman", podmanPull(ref2)},
	)
	b.ReportMetric(med2[0], "second-ns/op")
	b.ReportMetric(med2[1], "podman-second-ns/op")
	b.ReportMetric(med2[0]/med2[1], "x-second-vs-podman")
}
