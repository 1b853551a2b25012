package tests

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The fetch benchmark's image: incompressible random bytes, as in binaries
// and already-compressed assets, plus text-like bytes that gzip shrinks, as
// in scripts and configuration.
const (
	benchRandomBytes = 96 << 20
	benchTextBytes   = 32 << 20
)

// benchBigACI writes a gzip-compressed ACI holding benchRandomBytes of
// random data and benchTextBytes of repetitive text, and returns its path
// and its appc image ID. gzip runs at its fastest level, so making the
// image does not dominate the benchmark; decompression, which is what
// fetching costs, runs at the same speed whatever the level.
func benchBigACI(b *testing.B) (string, string) {
	b.Helper()
	path := filepath.Join(b.TempDir(), "big.aci")
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	bw := bufio.NewWriterSize(f, 1<<20)
	gz, err := gzip.NewWriterLevel(bw, gzip.BestSpeed)
	if err != nil {
		b.Fatal(err)
	}
	sum := sha512.New()
	tw := tar.NewWriter(io.MultiWriter(gz, sum))
	manifest, err := json.Marshal(imageManifest("example.com/bench-big", "/bin/true"))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	entry := func(name string, mode int64, typ byte, size int64, body io.Reader) {
		hdr := &tar.Header{Name: name, Mode: mode, Typeflag: typ, Size: size, ModTime: now}
		if err := tw.WriteHeader(hdr); err != nil {
			b.Fatal(err)
		}
		if body != nil {
			if _, err := io.CopyN(tw, body, size); err != nil {
				b.Fatal(err)
			}
		}
	}
	entry("manifest", 0o644, tar.TypeReg, int64(len(manifest)), strings.NewReader(string(manifest)))
	entry("rootfs", 0o755, tar.TypeDir, 0, nil)
	entry("rootfs/data", 0o755, tar.TypeDir, 0, nil)
	entry("rootfs/data/random.bin", 0o644, tar.TypeReg, benchRandomBytes, rand.Reader)
	entry("rootfs/data/text.txt", 0o644, tar.TypeReg, benchTextBytes, &benchText{})
	if err := tw.Close(); err != nil {
		b.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		b.Fatal(err)
	}
	if err := bw.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return path, "sha512-" + hex.EncodeToString(sum.Sum(nil))
}

// benchText is an endless stream of numbered log-like lines: text that
// compresses well but not trivially.
type benchText struct {
	n    int
	line []byte
}

func (t *benchText) Read(p []byte) (int, error) {
	total := 0
	for len(p) > 0 {
		if len(t.line) == 0 {
			t.n++
			t.line = fmt.Appendf(nil, "%08d level=info msg=\"request served\" path=/api/v1/items/%d status=200 bytes=%d\n", t.n, t.n%977, t.n*31%65536)
		}
		c := copy(p, t.line)
		t.line, p, total = t.line[c:], p[c:], total+c
	}
	return total, nil
}

// benchServe serves the file at path on 127.0.0.1 as /big.aci, without
// ETag or caching headers, and returns its URL and a count of the GETs of
// it that the server answered in full.
func benchServe(b *testing.B, path string) (string, *atomic.Int64) {
	b.Helper()
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/big.aci" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		if r.Header.Get("Range") != "" || r.Header.Get("If-None-Match") != "" {
			http.Error(w, "the benchmark serves whole images only", http.StatusBadRequest)
			return
		}
		defer served.Add(1)
		f, err := os.Open(path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "no-store")
		http.ServeContent(w, r, "", time.Time{}, f)
	}))
	b.Cleanup(srv.Close)
	return srv.URL + "/big.aci", &served
}

// benchGoFetch is the second peer: the least a correct fetch must do, in
// plain Go. It downloads url into a temp file in dir, then decompresses it
// into a second temp file while hashing, fsyncs and renames that into
// place, and checks the hash is want.
func benchGoFetch(url, dir, want string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	dl, err := os.CreateTemp(dir, "dl-")
	if err != nil {
		return err
	}
	defer os.Remove(dl.Name())
	defer dl.Close()
	if _, err := io.Copy(dl, resp.Body); err != nil {
		return err
	}
	if _, err := dl.Seek(0, io.SeekStart); err != nil {
		return err
	}
	gz, err := gzip.NewReader(bufio.NewReaderSize(dl, 1<<20))
	if err != nil {
		return err
	}
	out, err := os.CreateTemp(dir, "blob-")
	if err != nil {
		return err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	sum := sha512.New()
	if _, err := io.Copy(io.MultiWriter(out, sum), gz); err != nil {
		return err
	}
	if got := "sha512-" + hex.EncodeToString(sum.Sum(nil)); got != want {
		return fmt.Errorf("hash %s, want %s", got, want)
	}
	if err := out.Sync(); err != nil {
		return err
	}
	return os.Rename(out.Name(), filepath.Join(dir, "blob"))
}

// BenchmarkFetchThroughput times `orbit fetch` of a large unsigned ACI over
// plain HTTP from 127.0.0.1 (download, decompression, hashing, tar
// validation and durable import into the store), against curl downloading
// the same URL to /dev/null (the transfer alone) and against the plain Go
// download, gunzip, SHA-512 and fsync of benchGoFetch (the same work
// without orbit's checks and index). The image is removed from the store,
// untimed, after every round, so every fetch downloads and imports it
// again; the server sends no ETag, so nothing is revalidated either.
func BenchmarkFetchThroughput(b *testing.B) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		b.Skipf("curl is needed as the peer: %v", err)
	}
	aci, id := benchBigACI(b)
	info, err := os.Stat(aci)
	if err != nil {
		b.Fatal(err)
	}
	url, served := benchServe(b, aci)
	e := newEnv(b)
	goDir := b.TempDir()
	fetch := func(int) {
		got := strings.TrimSpace(benchOrbit(b, e, "fetch", "--full", "--insecure-options=image", url))
		if got != id {
			b.Fatalf("orbit fetch printed %q, want %s", got, id)
		}
	}
	between := func(int) {
		benchOrbit(b, e, "image", "rm", id)
		os.Remove(filepath.Join(goDir, "blob"))
	}
	// Warm up untimed: the first fetch also creates the store.
	fetch(0)
	between(0)
	perOp := benchCompare(b, between,
		benchSide{"orbit", fetch},
		benchSide{"curl", func(int) { benchExec(b, curl, "-sSf", "--noproxy", "*", "-o", "/dev/null", url) }},
		benchSide{"go", func(int) {
			if err := benchGoFetch(url, goDir, id); err != nil {
				b.Fatalf("go fetch: %v", err)
			}
		}},
	)
	if want := int64(3*b.N + 1); served.Load() != want {
		b.Fatalf("the server sent the image %d times, want %d: a side did not download it every time", served.Load(), want)
	}
	// Throughput in compressed (wire) megabytes a second, for each side.
	mbps := func(ns float64) float64 { return float64(info.Size()) / 1e6 / (ns / 1e9) }
	b.ReportMetric(mbps(perOp[0]), "MB/s")
	b.ReportMetric(mbps(perOp[1]), "curl-MB/s")
	b.ReportMetric(mbps(perOp[2]), "go-MB/s")
}
