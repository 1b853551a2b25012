package tests

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
)

// Functional tests of export, resumed downloads, the filling of a
// converted Docker image's volumes and --ipc=parent against a hostile app,
// image or server; helpers are prefixed hostileRkt.

// hostileRktServer serves whatever handle writes for the nth request (from
// 0) on 127.0.0.1, and counts the requests and the body bytes written.
type hostileRktServer struct {
	url      string
	requests atomic.Int64
	written  atomic.Int64
}

func hostileRktServe(t *testing.T, handle func(w http.ResponseWriter, r *http.Request, n int, write func([]byte) error)) *hostileRktServer {
	s := &hostileRktServer{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(s.requests.Add(1) - 1)
		write := func(b []byte) error {
			m, err := w.Write(b)
			s.written.Add(int64(m))
			return err
		}
		handle(w, r, n, write)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL + "/image.aci"
	return s
}

// hostileRktEndless writes zeroes until the client goes away.
func hostileRktEndless(write func([]byte) error) {
	buf := make([]byte, 64<<10)
	for write(buf) == nil {
	}
}

// hostileRktRunFor runs an orbit command that must end within d.
func hostileRktRunFor(t *testing.T, e *env, d time.Duration, args ...string) result {
	t.Helper()
	cmd := e.command(args...)
	timer := time.AfterFunc(d, func() { cmd.Process.Kill() })
	defer timer.Stop()
	r := runCommand(t, cmd)
	if !timer.Stop() {
		t.Errorf("orbit %s did not end within %s", strings.Join(args, " "), d)
	}
	return r
}

// hostileRktPartialBytes is the size of an env's kept downloads together.
func hostileRktPartialBytes(e *env) int64 {
	var n int64
	for _, name := range rktPartials(e) {
		if fi, err := os.Lstat(filepath.Join(e.Dir, "cas", "partial", name)); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// A server cannot make a fetch write more than about the image size limit:
// not with an endless body, a Content-Length above the limit, or, resuming a
// cut download, a 206 whose Content-Range announces a huge image, or less
// than it then sends. The kept part stays within the limit across fetches.
func TestHostileRktFetchBodyBoundedBySizeLimit(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	const cut = 600 << 10
	cutFirst := func(w http.ResponseWriter, write func([]byte) error) {
		w.Header().Set("ETag", `"e"`)
		w.Header().Set("Content-Length", strconv.Itoa(cut*3))
		w.WriteHeader(http.StatusOK)
		write(make([]byte, cut))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}
	for _, tc := range []struct {
		name   string
		handle func(w http.ResponseWriter, r *http.Request, n int, write func([]byte) error)
	}{
		{"endless body", func(w http.ResponseWriter, r *http.Request, n int, write func([]byte) error) {
			hostileRktEndless(write)
		}},
		{"Content-Length above the limit", func(w http.ResponseWriter, r *http.Request, n int, write func([]byte) error) {
			w.Header().Set("Content-Length", strconv.Itoa(1<<40))
			hostileRktEndless(write)
		}},
		{"206 announcing a huge image", func(w http.ResponseWriter, r *http.Request, n int, write func([]byte) error) {
			if r.Header.Get("Range") == "" {
				cutFirst(w, write)
			}
			w.Header().Set("ETag", `"e"`)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", cut, int64(1)<<40-1, int64(1)<<40))
			w.WriteHeader(http.StatusPartialContent)
			hostileRktEndless(write)
		}},
		{"206 sending more than its range", func(w http.ResponseWriter, r *http.Request, n int, write func([]byte) error) {
			if r.Header.Get("Range") == "" {
				cutFirst(w, write)
			}
			w.Header().Set("ETag", `"e"`)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/*", cut, cut+9))
			w.WriteHeader(http.StatusPartialContent)
			hostileRktEndless(write)
		}},
		{"206 of unknown size, cut again", func(w http.ResponseWriter, r *http.Request, n int, write func([]byte) error) {
			if r.Header.Get("Range") == "" {
				cutFirst(w, write)
			}
			first, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(r.Header.Get("Range"), "bytes="), "-"))
			w.Header().Set("ETag", `"e"`)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/*", first, first+cut-1))
			w.WriteHeader(http.StatusPartialContent)
			write(make([]byte, cut))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}},
	} {
		e := newEnv(t)
		e.ExtraEnv = append(e.ExtraEnv, "ORBIT_MAX_IMAGE_SIZE="+strconv.Itoa(limit))
		srv := hostileRktServe(t, tc.handle)
		bound := int64(limit + limit/64 + 1<<20)
		for i := range 5 {
			r := hostileRktRunFor(t, e, 20*time.Second, "fetch", "--insecure-options=image", srv.url)
			if r.Code == 0 {
				t.Errorf("%s: fetch %d succeeded: %s", tc.name, i, r)
			}
			if n := hostileRktPartialBytes(e); n > bound {
				t.Errorf("%s: fetch %d kept %d bytes, above the limit", tc.name, i, n)
				break
			}
			// What the server could write is bounded by the limit and
			// the sockets' buffers, for each try.
			if w := srv.written.Load(); w > int64(i+1)*(bound+16<<20) {
				t.Errorf("%s: the server wrote %d bytes into %d fetches", tc.name, w, i+1)
				break
			}
		}
	}
}

// A kept download whose name in cas/partial is a symbolic link or a hard
// link to a file elsewhere is not written through: the file stays as it
// was, the fetch gives the right image, and the directory is root's only.
func TestHostileRktFetchPartialLinkNotFollowed(t *testing.T) {
	t.Parallel()
	aci := busyboxACI(t, "example.com/partial-link")
	body, _ := os.ReadFile(aci)
	want := rktImageID(t, aci)
	for _, kind := range []string{"symlink", "hardlink"} {
		e := newEnv(t)
		srv := rktNewCutServer(t, body, `"v"`, 0)
		srv.cuts = 0
		e.mustRun("image", "list")
		dir := filepath.Join(e.Dir, "cas", "partial")
		if err := os.MkdirAll(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(dir, 0o777)
		sum := sha256.Sum256([]byte(srv.url))
		key := hex.EncodeToString(sum[:])
		victim := filepath.Join(e.Dir, "victim")
		writeFile(t, victim, "precious host file\n")
		var err error
		if kind == "symlink" {
			err = os.Symlink(victim, filepath.Join(dir, key+".aci"))
		} else {
			err = os.Link(victim, filepath.Join(dir, key+".aci"))
		}
		if err != nil {
			t.Fatal(err)
		}
		meta, _ := json.Marshal(map[string]any{"urlHash": key, "url": srv.url, "etag": `"v"`, "started": time.Now()})
		writeFile(t, filepath.Join(dir, key+".json"), string(meta))
		r := e.run("fetch", "--insecure-options=image", srv.url)
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != want {
			t.Errorf("%s: fetch: want %s: %s", kind, want, r)
		}
		if got, _ := os.ReadFile(victim); string(got) != "precious host file\n" {
			t.Errorf("%s: the file the kept download's name links to was written: %.80q", kind, got)
		}
		if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: cas/partial is not root's only: %v %v", kind, fi.Mode(), err)
		}
	}
}

// A server that switches the image behind the same ETag gets the kept
// part and the rest of the other image put together: that is not a valid
// image, so the image is downloaded whole once, and only once: a server
// that keeps sending something invalid is not asked again and again.
func TestHostileRktFetchSameETagSwitchedContent(t *testing.T) {
	t.Parallel()
	oldACI := busyboxACI(t, "example.com/switch-old")
	newACI := busyboxACI(t, "example.com/switch-new", "/bin/true")
	oldBody, _ := os.ReadFile(oldACI)
	newBody, _ := os.ReadFile(newACI)
	want := rktImageID(t, newACI)
	n := min(len(oldBody), len(newBody)) / 2

	e := newEnv(t)
	srv := rktNewCutServer(t, oldBody, `"same"`, n)
	if r := e.run("fetch", "--insecure-options=image", srv.url); r.Code == 0 {
		t.Fatalf("the cut fetch succeeded: %s", r)
	}
	srv.set(newBody, `"same"`, false)
	if r := e.run("fetch", "--insecure-options=image", srv.url); r.Code != 0 || strings.TrimSpace(r.Stdout) != want {
		t.Errorf("want the new image %s: %s", want, r)
	}
	if reqs := srv.requests(); len(reqs) != 3 || !strings.HasPrefix(reqs[1], fmt.Sprintf("range=bytes=%d-", n)) || !strings.HasPrefix(reqs[2], "range= ") {
		t.Errorf("requests: want the cut one, a range request, the whole image once: %q", reqs)
	}

	// Garbage behind the same ETag every time: one range request, one
	// whole download, then a one-line failure and nothing kept.
	e = newEnv(t)
	garbage := append([]byte(nil), oldBody...)
	srv = rktNewCutServer(t, oldBody, `"same"`, n)
	e.run("fetch", "--insecure-options=image", srv.url)
	for i := n; i < len(garbage); i++ {
		garbage[i] ^= 0xff
	}
	srv.set(garbage, `"same"`, false)
	r := hostileRktRunFor(t, e, 60*time.Second, "fetch", "--insecure-options=image", srv.url)
	if r.Code == 0 {
		t.Errorf("fetch of garbage: want a failure: %s", r)
	}
	if reqs := srv.requests(); len(reqs) != 3 {
		t.Errorf("requests: want the cut one, a range request, the whole image once: %q", reqs)
	}
	if p := rktPartials(e); len(p) != 0 {
		t.Errorf("kept download left: %v", p)
	}
}

// Two fetches of the same URL at once: one keeps the download, the other
// downloads into a file of its own; both give the image, and nothing is
// left in cas/partial.
func TestHostileRktFetchConcurrentSameURL(t *testing.T) {
	t.Parallel()
	aci := busyboxACI(t, "example.com/concurrent")
	body, _ := os.ReadFile(aci)
	want := rktImageID(t, aci)
	srv := hostileRktServe(t, func(w http.ResponseWriter, r *http.Request, n int, write func([]byte) error) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.Header().Set("ETag", `"c"`)
		w.WriteHeader(http.StatusOK)
		step := len(body)/20 + 1
		for i := 0; i < len(body); i += step {
			write(body[i:min(i+step, len(body))])
			w.(http.Flusher).Flush()
			time.Sleep(50 * time.Millisecond)
		}
	})
	e := newEnv(t)
	e.mustRun("image", "list")
	var wg sync.WaitGroup
	results := make([]result, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.run("fetch", "--insecure-options=image", srv.url)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != want {
			t.Errorf("fetch %d: want %s: %s", i, want, r)
		}
	}
	if p := rktPartials(e); len(p) != 0 {
		t.Errorf("kept download left: %v", p)
	}
}

// hostileRktExportPod runs an image whose app runs script as root, with
// the flavour fl, and returns the exited pod's UUID.
func hostileRktExportPod(t *testing.T, e *env, fl, name, script string, rootfs func(dir string), manifest func(m map[string]any)) string {
	t.Helper()
	if manifest == nil {
		manifest = func(map[string]any) {}
	}
	if rootfs == nil {
		rootfs = func(string) {}
	}
	img := rktImageFromRootfs(t, name, rootfs, manifest, "/bin/sh", "-c", script)
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	e.mustRun("run", "--insecure-options=image", fl, "--uuid-file-save="+uuidFile, img)
	return readTrimmed(t, uuidFile)
}

// hostileRktTar reads a gzip-compressed ACI's entries.
func hostileRktTar(t *testing.T, path string) map[string]*tar.Header {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	hdrs := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return hdrs
		}
		if err != nil {
			t.Fatal(err)
		}
		hdrs[strings.TrimSuffix(h.Name, "/")] = h
	}
}

// What a hostile app leaves in its root filesystem is exported as what it
// is and never followed or read from the host: links to host paths stay
// links (and stay inside the root once fetched and run again), a hard
// link is a link to the other name, a FIFO and a device node are nodes
// (neither is opened, so the export does not hang or read a device),
// sockets are left out, a set-user-ID file keeps its mode, and names with
// control characters are kept as names.
func TestHostileRktExportHostileRootfs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	secret := filepath.Join(t.TempDir(), "host-secret")
	writeFile(t, secret, "host secret\n")
	script := "ln -s " + secret + " /hostlink; ln -s ../../../../../../../.." + secret + " /etc/uplink; " +
		"echo shared > /f1; ln /f1 /f2; mkfifo /fifo; mknod /zero c 1 5; " +
		"cp /bin/busybox /suid; chmod 4755 /suid; touch \"$(printf 'bad\\033[31mname\\nx')\"; " +
		"nc -lk -s 127.0.0.1 -p 1 >/dev/null 2>&1 & true"
	for _, fl := range rktFlavours(t) {
		uuid := hostileRktExportPod(t, e, fl, "example.com/hostile-export", script, nil, nil)
		// A relative link out of the root would make an image no fetch
		// takes (and a careless reader follows): refused, in one line.
		destDir := t.TempDir()
		out := filepath.Join(destDir, "out.aci")
		r := hostileRktRunFor(t, e, 60*time.Second, "export", uuid, out)
		if r.Code == 0 || !strings.Contains(r.Stderr, "rootfs/etc/uplink") || !strings.Contains(r.Stderr, "escapes the image root") {
			t.Errorf("%s: export of a link out of the root: %s", fl, r)
		}
		if left := hostileRktLeftovers(e, destDir, uuid); len(left) != 0 {
			t.Errorf("%s: the refused export left %v", fl, left)
		}
		e.mustRun("rm", uuid)
		uuid = hostileRktExportPod(t, e, fl, "example.com/hostile-export", strings.Replace(strings.Replace(script, "/etc/uplink", "/uplink", 1), "ln -s ../", "ln -s /../", 1), nil, nil)
		if r := hostileRktRunFor(t, e, 60*time.Second, "export", uuid, out); r.Code != 0 {
			t.Errorf("%s: export: %s", fl, r)
			continue
		}
		h := hostileRktTar(t, out)
		check := func(name string, typ byte, link string) {
			t.Helper()
			if got := h["rootfs/"+name]; got == nil || got.Typeflag != typ || got.Linkname != link || (typ != tar.TypeReg && got.Size != 0) {
				t.Errorf("%s: %s: want type %c link %q: %+v", fl, name, typ, link, got)
			}
		}
		check("hostlink", tar.TypeSymlink, secret)
		check("uplink", tar.TypeSymlink, "/../../../../../../../.."+secret)
		check("f1", tar.TypeReg, "")
		check("f2", tar.TypeLink, "rootfs/f1")
		check("fifo", tar.TypeFifo, "")
		check("bad\x1b[31mname\nx", tar.TypeReg, "")
		if z := h["rootfs/zero"]; z != nil {
			check("zero", tar.TypeChar, "")
		}
		if s := h["rootfs/suid"]; s == nil || s.Mode&0o7777 != 0o4755 {
			t.Errorf("%s: the set-user-ID file: %+v", fl, s)
		}
		for name, hdr := range h {
			if hdr.Typeflag == tar.TypeReg && hdr.Size == int64(len("host secret\n")) {
				t.Errorf("%s: %q has the size of the host file the app linked to", fl, name)
			}
		}
		// Fetched and run again, the links are resolved inside the root.
		e.mustRun("fetch", "--insecure-options=image", out)
		r = e.run("run", "--insecure-options=image", rktFly, out, "--exec=/bin/sh", "--", "-c",
			"cat /hostlink /uplink /etc/uplink 2>&1 || echo not-found; cat /f2")
		if r.Code != 0 || strings.Contains(r.Stdout, "host secret") || !strings.HasSuffix(r.Stdout, "shared\n") {
			t.Errorf("%s: running the export: %s", fl, r)
		}
		e.mustRun("rm", uuid)
	}
	if got, _ := os.ReadFile(secret); string(got) != "host secret\n" {
		t.Errorf("the host file changed: %q", got)
	}
}

// The exported manifest leaves out the image's dependencies and path
// whitelist: the rootfs is the rendered tree already, so what the app
// removed of a dependency's files stays removed and what it made outside
// the whitelist is kept, when the export is fetched and run again.
func TestHostileRktExportManifestDropsDependencies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	app := filepath.Join(t.TempDir(), "app")
	writeFile(t, filepath.Join(app, "app-file"), "app\n")
	m := imageManifest("example.com/hostile-export-dependent", "/bin/sh", "-c", "rm /etc/from-base; echo made > /made")
	m["pathWhitelist"] = []string{"/app-file", "/bin", "/bin/sh", "/bin/busybox", "/etc", "/etc/from-base"}
	// The base's rootfs has a file the app then removes.
	baseRoot := busyboxRootfs(t)
	writeFile(t, filepath.Join(baseRoot, "etc/from-base"), "base\n")
	base2 := writeACI(t, filepath.Join(t.TempDir(), "base2.aci"), baseRoot, imageManifest("example.com/hostile-export-base2"))
	e.mustRun("fetch", "--insecure-options=image", base2)
	m["dependencies"] = []map[string]any{{"imageName": "example.com/hostile-export-base2"}}
	img := writeACI(t, filepath.Join(t.TempDir(), "app.aci"), app, m)
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	e.mustRun("run", "--insecure-options=image", rktFly, "--uuid-file-save="+uuidFile, img)
	uuid := readTrimmed(t, uuidFile)
	out := filepath.Join(t.TempDir(), "out.aci")
	e.mustRun("export", uuid, out)
	h := hostileRktTar(t, out)
	if h["manifest"] == nil {
		t.Fatal("no manifest in the export")
	}
	r := e.run("run", "--insecure-options=image", rktFly, out, "--exec=/bin/sh", "--", "-c",
		"cat /app-file /made; test -e /etc/from-base && echo resurrected || echo removed")
	if r.Code != 0 || r.Stdout != "app\nmade\nremoved\n" {
		t.Errorf("the export run again: want the app's changes kept: %s", r)
	}
	im := e.mustRun("image", "cat-manifest", strings.TrimSpace(e.mustRun("fetch", "--insecure-options=image", out).Stdout)).Stdout
	if strings.Contains(im, "dependencies") || strings.Contains(im, "pathWhitelist") {
		t.Errorf("the exported manifest keeps dependencies or a whitelist: %s", im)
	}
}

// hostileRktPodDir finds a pod's directory, whatever its state.
func hostileRktPodDir(e *env, uuid string) string {
	m, _ := filepath.Glob(filepath.Join(e.Dir, "pods", "*", uuid))
	if len(m) == 0 {
		return ""
	}
	return m[0]
}

// hostileRktLeftovers lists what an export may leave: temporary files
// beside FILE.aci, and mount points in the pod's directory.
func hostileRktLeftovers(e *env, destDir, uuid string) []string {
	var left []string
	ents, _ := os.ReadDir(destDir)
	for _, d := range ents {
		left = append(left, d.Name())
	}
	if dir := hostileRktPodDir(e, uuid); dir != "" {
		m, _ := filepath.Glob(filepath.Join(dir, "export-*"))
		left = append(left, m...)
	}
	return left
}

// An app that leaves a huge sparse file cannot make export write an image
// larger than the store would take: export refuses at once, in one line,
// leaving nothing. Interrupted (Ctrl-C), export stops at once and leaves no
// file, temporary file or mount; while it runs the pod is locked, so rm
// and gc leave it be.
func TestHostileRktExportHugeSparseAndInterrupt(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	uuid := hostileRktExportPod(t, e, rktFly, "example.com/hostile-sparse", "echo kept > /kept; truncate -s 64G /sparse", nil, nil)
	destDir := t.TempDir()
	out := filepath.Join(destDir, "out.aci")
	r := hostileRktRunFor(t, e, 30*time.Second, "export", uuid, out)
	if r.Code == 0 || !strings.Contains(r.Stderr, "16GiB") || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
		t.Errorf("export of a 64G sparse file: want a one-line refusal naming the limit: %s", r)
	}
	if left := hostileRktLeftovers(e, destDir, uuid); len(left) != 0 {
		t.Errorf("export left %v", left)
	}

	// Within a raised limit the export reads zeroes for a while: stop it.
	cmd := e.command("export", uuid, out)
	cmd.Env = append(cmd.Env, "ORBIT_MAX_IMAGE_SIZE=128G")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	time.Sleep(1500 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("export ended before it was interrupted: %v %s", err, stderr.String())
	default:
	}
	// The pod is locked: rm and gc do not remove it meanwhile.
	e.run("rm", uuid)
	e.run("gc", "--grace-period=0s", "--expire-prepared=0s")
	if hostileRktPodDir(e, uuid) == "" {
		t.Error("the pod was removed while it was being exported")
	}
	cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("interrupted export exited 0: %s", stderr.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Error("export did not stop within 10s of SIGINT")
	}
	if left := hostileRktLeftovers(e, destDir, uuid); len(left) != 0 {
		t.Errorf("interrupted export left %v", left)
	}

	// Killed (SIGKILL), it can clean nothing up itself: it leaves no file
	// under any name, and rm unmounts and removes what it left in the pod.
	cmd = e.command("export", uuid, out)
	cmd.Env = append(cmd.Env, "ORBIT_MAX_IMAGE_SIZE=128G")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	if ents, _ := os.ReadDir(destDir); len(ents) != 0 {
		out, _ := exec.Command("ls", "-la", destDir).CombinedOutput()
		t.Errorf("a killed export left %v beside FILE.aci: %s", ents, out)
	}
	podDir := hostileRktPodDir(e, uuid)
	if r := e.run("rm", uuid); r.Code != 0 {
		t.Errorf("rm after the export: %s", r)
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); podDir == "" || strings.Contains(string(mi), podDir) {
		t.Errorf("a mount below the removed pod %s is left", podDir)
	}
	if hostileRktPodDir(e, uuid) != "" {
		t.Error("the pod is still there after rm")
	}
}

// A converted Docker image cannot make the filling of a new volume write
// more than the image holds: hard links in the image stay hard links in
// the volume (a file linked a hundred times is not copied a hundred
// times). A mount point whose path climbs with ".." is resolved inside the
// app's root, and a host volume is never filled.
func TestHostileRktDockerVolumeFillBounded(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	root := busyboxRootfs(t)
	big := make([]byte, 2<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	if err := os.MkdirAll(filepath.Join(root, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "data/big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := os.Link(filepath.Join(root, "data/big"), filepath.Join(root, "data", fmt.Sprintf("l%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(root, "etc/image-marker"), "image\n")
	// A link above a mount point names a host directory with files of its
	// own; the image has that path too.
	hostDir := filepath.Join(t.TempDir(), "host-above")
	writeFile(t, filepath.Join(hostDir, "vol/host-file"), "host\n")
	writeFile(t, filepath.Join(root, hostDir, "vol/in-image"), "image\n")
	if err := os.Symlink(hostDir, filepath.Join(root, "up")); err != nil {
		t.Fatal(err)
	}
	m := imageManifest("example.com/hostile-docker-links", "/bin/sh", "-c",
		"echo links=$(stat -c %h /data/l42) kib=$(du -sk /data | cut -f1); ls /etc | grep -c -e image-marker -e debian_version; echo above=$(ls /up/vol)")
	m["app"].(map[string]any)["mountPoints"] = []map[string]any{
		{"name": "data", "path": "/data"},
		{"name": "dots", "path": "/../../../../etc"},
		{"name": "above", "path": "/up/vol"},
	}
	m["annotations"] = []map[string]string{{"name": "appc.io/docker/repository", "value": "library/links"}}
	data, _ := json.Marshal(m)
	manifest := filepath.Join(t.TempDir(), "manifest")
	writeFile(t, manifest, string(data))
	img := filepath.Join(t.TempDir(), "links.aci")
	e.mustRun("image", "build", root, manifest, img)
	for _, fl := range rktFlavours(t) {
		r := e.run("run", "--insecure-options=image", fl, img)
		var links, kib, marks int
		fmt.Sscanf(r.Stdout, "links=%d kib=%d\n%d", &links, &kib, &marks)
		if r.Code != 0 || links != 101 || kib > 4096 || marks != 1 || !strings.HasSuffix(r.Stdout, "above=in-image\n") {
			t.Errorf("%s: the filled volume: want 101 links to one file of 2MiB, and the image's /etc: %s", fl, r)
		}
		host := t.TempDir()
		if r := e.run("run", "--insecure-options=image", fl, "--volume=data,kind=host,source="+host, img); r.Code != 0 {
			t.Errorf("%s: with a host volume: %s", fl, r)
		}
		if ents, _ := os.ReadDir(host); len(ents) != 0 {
			t.Errorf("%s: the host volume was filled from the image: %d entries", fl, len(ents))
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(hostDir, "vol")); len(ents) != 1 {
		t.Errorf("the host directory a link above a mount point names was changed: %v", ents)
	}
}

// Under --ipc=parent the descriptor of the host's IPC namespace stage1
// hands in reaches no process of the pod: not the supervisor, not any app,
// not an entered command (a namespace descriptor would let an app setns
// into the host's namespace). Apps hold the same descriptors with and
// without it.
func TestHostileRktIPCParentDescriptorNotLeaked(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	e := newEnv(t)
	// Every namespace descriptor any process in the pod holds, and the
	// app shell's own descriptors.
	show := `echo nsfds=$(ls -l /proc/[0-9]*/fd/ 2>/dev/null | grep -cE '(ipc|mnt|net|pid|uts|user|cgroup|time):\['); `
	// The other app's descriptors, as a long-running app holds them.
	other := `sleep 1; for p in /proc/[0-9]*; do if [ "$(cat $p/comm)" = sleep ]; then echo own=$(for f in $p/fd/*; do echo -n "${f##*/}>$(readlink $f | sed 's/\[[0-9]*\]//') "; done); fi; done`
	a := rktImage(t, "example.com/ipcleak-a", nil, "/bin/sh", "-c", show+"exec sleep 3")
	b := rktImage(t, "example.com/ipcleak-b", nil, "/bin/sh", "-c", show+other)
	own := map[string]string{}
	for _, mode := range []string{"--ipc=parent", "--ipc=private"} {
		r := e.run("run", "--insecure-options=image", rktNspawn, mode, a, b)
		if r.Code != 0 || strings.Count(r.Stdout, "nsfds=0\n") != 2 {
			t.Errorf("%s: want no namespace descriptor in any process of the pod, seen by both apps: %s", mode, r)
		}
		for _, l := range strings.Split(r.Stdout, "\n") {
			if _, rest, ok := strings.Cut(l, "own="); ok {
				own[mode] = rest
			}
		}
	}
	if own["--ipc=parent"] == "" || own["--ipc=parent"] != own["--ipc=private"] {
		t.Errorf("an app's descriptors differ with --ipc=parent: %q, without: %q", own["--ipc=parent"], own["--ipc=private"])
	}
	// Seen from the host, which may look into every process: the
	// supervisor, both apps and an entered command.
	sleeper := rktImage(t, "example.com/ipcleak-sleep", nil, "/bin/sh", "-c", "sleep 30")
	uuidFile := filepath.Join(t.TempDir(), "uuid")
	cmd := e.command("run", "--net=host", "--insecure-options=image", rktNspawn, "--ipc=parent", "--uuid-file-save="+uuidFile, sleeper, a)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	uuid := waitRunning(t, e, uuidFile)
	defer e.run("stop", "--force", uuid)
	enter := e.command("enter", "--app=ipcleak-sleep", uuid, "/bin/sh", "-c", "exec sleep 5")
	if err := enter.Start(); err != nil {
		t.Fatal(err)
	}
	defer enter.Wait()
	time.Sleep(1500 * time.Millisecond)
	procs, leaks := hostileRktPodDescriptors(t, cmd.Process.Pid)
	if procs < 4 {
		t.Errorf("found %d processes in the pod, want the supervisor, two apps and the entered command", procs)
	}
	for _, l := range leaks {
		t.Errorf("a process of the pod holds a namespace descriptor: %s", l)
	}
}

// hostileRktPodDescriptors looks, from the host, at the descriptors of
// every process in the PID namespace of the pod that the orbit process
// runPid runs, and returns how many processes it saw and the namespace
// descriptors they hold.
func hostileRktPodDescriptors(t *testing.T, runPid int) (int, []string) {
	t.Helper()
	hostNS, _ := os.Readlink("/proc/self/ns/pid")
	parent := func(pid string) string {
		data, _ := os.ReadFile("/proc/" + pid + "/status")
		for _, l := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(l, "PPid:"); ok {
				return strings.TrimSpace(v)
			}
		}
		return ""
	}
	ents, _ := os.ReadDir("/proc")
	var podNS string
	for _, d := range ents {
		pid := d.Name()
		if _, err := strconv.Atoi(pid); err != nil {
			continue
		}
		ns, _ := os.Readlink("/proc/" + pid + "/ns/pid")
		if ns == "" || ns == hostNS {
			continue
		}
		for p := parent(pid); p != "" && p != "0"; p = parent(p) {
			if p == strconv.Itoa(runPid) {
				podNS = ns
			}
		}
	}
	if podNS == "" {
		t.Fatal("no process of the pod found")
	}
	procs := 0
	var leaks []string
	for _, d := range ents {
		pid := d.Name()
		if ns, _ := os.Readlink("/proc/" + pid + "/ns/pid"); ns != podNS {
			continue
		}
		procs++
		fds, _ := os.ReadDir("/proc/" + pid + "/fd")
		for _, fd := range fds {
			l, _ := os.Readlink("/proc/" + pid + "/fd/" + fd.Name())
			for _, kind := range []string{"ipc:[", "mnt:[", "net:[", "pid:[", "uts:[", "user:[", "cgroup:["} {
				if strings.HasPrefix(l, kind) {
					comm, _ := os.ReadFile("/proc/" + pid + "/comm")
					leaks = append(leaks, fmt.Sprintf("%s (%s) fd %s: %s", pid, strings.TrimSpace(string(comm)), fd.Name(), l))
				}
			}
		}
	}
	return procs, leaks
}

// An app that nests directories deeper than a path can name, with escape
// sequences in their names, makes its own export fail, in one line that
// writes no control character to the user's terminal.
func TestHostileRktExportErrorQuotesNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	script := `n=$(printf 'e\033]0;pwned\007\033[31m%0200d' 0); i=0; while [ $i -lt 25 ]; do mkdir "$n" && cd "$n" 2>/dev/null || break; i=$((i+1)); done; true`
	uuid := hostileRktExportPod(t, e, rktFly, "example.com/hostile-deep", script, nil, nil)
	r := hostileRktRunFor(t, e, 60*time.Second, "export", uuid, filepath.Join(t.TempDir(), "out.aci"))
	if r.Code == 0 || strings.ContainsAny(r.Stderr, "\x1b\x07") {
		t.Errorf("export of a too deep tree: want a failure without control characters: %.300q", r.Stderr)
	}
	if strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
		t.Errorf("want one line: %.300q", r.Stderr)
	}
}

// With socket activation, --ipc=parent's descriptor, handed in after the
// sockets, is taken off before the sockets are handed on: the app gets
// LISTEN_FDS=1 and its socket as descriptor 3, as without it.
func TestHostileRktIPCParentWithSocketActivation(t *testing.T) {
	t.Parallel()
	requireNspawn(t)
	aci := sockAppACI(t)
	e := newEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lf, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	args := e.args("run", "--insecure-options=image", rktNspawn, "--ipc=parent", aci)
	cmd := exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"`, binary}, args...)...)
	cmd.ExtraFiles = []*os.File{lf}
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	conn, err := net.DialTimeout("tcp", l.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	conn.Close()
	if err != nil || line != "hello from sockapp\n" {
		t.Errorf("the app did not serve on the activation socket: %q %v; output:\n%s", line, err, out.String())
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Error("orbit run did not end")
	}
}
