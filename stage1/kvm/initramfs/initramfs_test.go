package initramfs

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/orbit-containers/orbit/stage1/kvm/kernel"
)

type readEntry struct {
	mode uint32
	rdev [2]int
	data []byte
}

// readNewc parses a newc archive the way the kernel does, strictly.
func readNewc(t *testing.T, b []byte) (map[string]readEntry, []string) {
	t.Helper()
	entries := map[string]readEntry{}
	var names []string
	off := 0
	field := func(i int) int {
		v, err := strconv.ParseUint(string(b[off+6+8*i:off+14+8*i]), 16, 32)
		if err != nil {
			t.Fatalf("header field %d at %d: %v", i, off, err)
		}
		return int(v)
	}
	for {
		if off%4 != 0 || off+110 > len(b) || string(b[off:off+6]) != "070701" {
			t.Fatalf("bad header at %d", off)
		}
		mode, size, namesize := field(1), field(6), field(11)
		name := string(b[off+110 : off+110+namesize-1])
		if b[off+110+namesize-1] != 0 {
			t.Fatalf("name %q not NUL-terminated", name)
		}
		dataOff := off + 110 + namesize
		dataOff += pad(dataOff)
		if name == "TRAILER!!!" {
			if rest := b[dataOff:]; len(bytes.Trim(rest, "\x00")) != 0 {
				t.Fatalf("data after the trailer")
			}
			return entries, names
		}
		entries[name] = readEntry{mode: uint32(mode), rdev: [2]int{field(9), field(10)}, data: b[dataOff : dataOff+size]}
		names = append(names, name)
		off = dataOff + size
		off += pad(off)
	}
}

func TestBuildWithoutModules(t *testing.T) {
	var buf bytes.Buffer
	init := []byte("#!/bin/true\n")
	if err := Build(&buf, init, &kernel.Kernel{Kind: kernel.Small, Version: "6.1.192"}); err != nil {
		t.Fatal(err)
	}
	entries, names := readNewc(t, buf.Bytes())
	if e := entries["init"]; e.mode != 0o100755 || !bytes.Equal(e.data, init) {
		t.Errorf("init: %o %q", e.mode, e.data)
	}
	if e := entries["dev/console"]; e.mode != 0o020600 || e.rdev != [2]int{5, 1} {
		t.Errorf("dev/console: %o %v", e.mode, e.rdev)
	}
	if e := entries["dev/null"]; e.mode != 0o020666 || e.rdev != [2]int{1, 3} {
		t.Errorf("dev/null: %o %v", e.mode, e.rdev)
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp"} {
		if e, ok := entries[d]; !ok || e.mode&0o170000 != 0o040000 {
			t.Errorf("directory %s: %o", d, e.mode)
		}
	}
	if _, ok := entries[strings.TrimPrefix(kernel.ModuleOrder, "/")]; ok {
		t.Errorf("a module list without modules: %v", names)
	}
	// The same input makes the same bytes.
	var again bytes.Buffer
	if err := Build(&again, init, &kernel.Kernel{Kind: kernel.Small}); err != nil || !bytes.Equal(buf.Bytes(), again.Bytes()) {
		t.Errorf("not reproducible: %v", err)
	}
	if err := Build(&again, nil, nil); err == nil {
		t.Error("built an initramfs without an init")
	}
}

func TestBuildPacksModulesDecompressedInOrder(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "virtio.ko")
	if err := os.WriteFile(plain, []byte("virtio module"), 0o644); err != nil {
		t.Fatal(err)
	}
	var xzBuf bytes.Buffer
	xw, err := xz.NewWriter(&xzBuf)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write([]byte("9p module"))
	xw.Close()
	compressed := filepath.Join(dir, "9p.ko.xz")
	if err := os.WriteFile(compressed, xzBuf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	k := &kernel.Kernel{Kind: kernel.Packaged, Version: "6.1.0", Modules: []string{plain, compressed}}
	var buf bytes.Buffer
	if err := Build(&buf, []byte("init"), k); err != nil {
		t.Fatal(err)
	}
	entries, names := readNewc(t, buf.Bytes())
	modDir := strings.TrimPrefix(kernel.ModuleDir, "/")
	if e := entries[modDir+"/9p.ko"]; string(e.data) != "9p module" || e.mode != 0o100644 {
		t.Errorf("9p.ko: %o %q (entries %v)", e.mode, e.data, names)
	}
	if e := entries[modDir+"/virtio.ko"]; string(e.data) != "virtio module" {
		t.Errorf("virtio.ko: %q", e.data)
	}
	if e := entries[strings.TrimPrefix(kernel.ModuleOrder, "/")]; string(e.data) != "virtio.ko\n9p.ko\n" {
		t.Errorf("load order: %q", e.data)
	}
	// GNU cpio, when installed, reads it too.
	if _, err := exec.LookPath("cpio"); err == nil {
		cmd := exec.Command("cpio", "-it", "--quiet")
		cmd.Stdin = bytes.NewReader(buf.Bytes())
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), modDir+"/9p.ko\n") || !strings.Contains(string(out), "init\n") {
			t.Errorf("cpio -it: %v\n%s", err, out)
		}
	}
	if err := Build(&buf, []byte("init"), &kernel.Kernel{Modules: []string{filepath.Join(dir, "missing.ko")}}); err == nil {
		t.Error("built with a missing module")
	}
}

func TestCachedBuildsOncePerContent(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	mod := filepath.Join(t.TempDir(), "virtio.ko")
	if err := os.WriteFile(mod, []byte("v1"), 0o644); err != nil {
		t.Fatal(err)
	}
	k := &kernel.Kernel{Kind: kernel.Packaged, Version: "6.1.0", Modules: []string{mod}}

	paths := make([]string, 8)
	var wg sync.WaitGroup
	for i := range paths {
		wg.Go(func() {
			p, err := Cached(dir, []byte("init"), k)
			if err != nil {
				t.Error(err)
			}
			paths[i] = p
		})
	}
	wg.Wait()
	for _, p := range paths[1:] {
		if p != paths[0] {
			t.Fatalf("concurrent builds gave %s and %s", paths[0], p)
		}
	}
	files, _ := os.ReadDir(dir)
	if len(files) != 1 {
		t.Fatalf("cache holds %d files, want 1 (no temp files left)", len(files))
	}
	data, err := os.ReadFile(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	if entries, _ := readNewc(t, data); string(entries["init"].data) != "init" {
		t.Fatalf("cached archive's init: %q", entries["init"].data)
	}

	other, _ := Cached(dir, []byte("another init"), k)
	if err := os.WriteFile(mod, []byte("v2"), 0o644); err != nil {
		t.Fatal(err)
	}
	changedModule, _ := Cached(dir, []byte("init"), k)
	if other == paths[0] || changedModule == paths[0] || other == changedModule {
		t.Fatalf("different content shares a cache entry: %s %s %s", paths[0], other, changedModule)
	}
}
