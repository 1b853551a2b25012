package aci

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestExtractKeepsMetadata(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for owners and device nodes")
	}
	suid := file("rootfs/bin/su", "su")
	suid.hdr.Mode, suid.hdr.Uid, suid.hdr.Gid = 0o4755, 0, 0
	owned := dir("rootfs/home/user")
	owned.hdr.Mode, owned.hdr.Uid, owned.hdr.Gid = 0o750, 1000, 1001
	attr := file("rootfs/bin/ping", "ping")
	attr.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.orbit": "yes"}
	link := symlink("rootfs/bin/sh", "busybox")
	link.hdr.Uid, link.hdr.Gid = 5, 6
	img := buildTar(t,
		manifestEnt(t, "example.com/meta"),
		dir("rootfs"), dir("rootfs/bin"), dir("rootfs/home"),
		suid, owned, attr, link,
		file("rootfs/bin/busybox", "bb"),
		hardlink("rootfs/bin/busybox2", "rootfs/bin/busybox"),
		dir("rootfs/dev"),
		ent{hdr: tar.Header{Name: "rootfs/dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: testTime}},
		ent{hdr: tar.Header{Name: "rootfs/dev/loop9", Typeflag: tar.TypeBlock, Mode: 0o660, Devmajor: 7, Devminor: 9, ModTime: testTime}},
		ent{hdr: tar.Header{Name: "rootfs/run.fifo", Typeflag: tar.TypeFifo, Mode: 0o620, ModTime: testTime}},
		file("rootfs/deep/implicit/file", "made without its directories"),
	)
	for _, fallback := range []bool{false, true} {
		t.Run(map[bool]string{false: "openat2", true: "walk"}[fallback], func(t *testing.T) {
			dest := t.TempDir()
			if err := extract(bytes.NewReader(img), dest, extractOptions{route: keepAll, check: true, noOpenat2: fallback}); err != nil {
				t.Fatal(err)
			}
			root := filepath.Join(dest, "rootfs")
			if got := readFile(t, filepath.Join(dest, "manifest")); !strings.Contains(got, "example.com/meta") {
				t.Errorf("manifest %q", got)
			}
			if fi := mustExist(t, filepath.Join(root, "bin/su")); fi.Mode() != os.ModeSetuid|0o755 {
				t.Errorf("su mode %v", fi.Mode())
			}
			st := stat(t, filepath.Join(root, "home/user"))
			if st.Uid != 1000 || st.Gid != 1001 || st.Mode&0o7777 != 0o750 {
				t.Errorf("home/user: uid %d gid %d mode %o", st.Uid, st.Gid, st.Mode&0o7777)
			}
			if got := mtime(st); !got.Equal(testTime) {
				t.Errorf("home/user mtime %v, want %v", got, testTime)
			}
			if got := mtime(stat(t, root+"/bin")); !got.Equal(testTime) {
				t.Errorf("bin mtime %v (directory times must be set after its files)", got)
			}
			if got := mtime(stat(t, root+"/bin/busybox")); !got.Equal(testTime) {
				t.Errorf("busybox mtime %v", got)
			}
			lst := stat(t, root+"/bin/sh")
			if target, _ := os.Readlink(root + "/bin/sh"); target != "busybox" || lst.Uid != 5 || lst.Gid != 6 {
				t.Errorf("sh -> %q owned %d:%d", target, lst.Uid, lst.Gid)
			}
			if a, b := stat(t, root+"/bin/busybox"), stat(t, root+"/bin/busybox2"); a.Ino != b.Ino {
				t.Errorf("busybox2 is not a hard link of busybox")
			}
			buf := make([]byte, 16)
			if n, err := unix.Getxattr(root+"/bin/ping", "user.orbit", buf); err != nil || string(buf[:n]) != "yes" {
				t.Errorf("xattr: %q %v", buf[:n], err)
			}
			if d := stat(t, root+"/dev/null"); d.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(d.Rdev) != 1 || unix.Minor(d.Rdev) != 3 || d.Mode&0o777 != 0o666 {
				t.Errorf("dev/null: mode %o rdev %d:%d", d.Mode, unix.Major(d.Rdev), unix.Minor(d.Rdev))
			}
			if d := stat(t, root+"/dev/loop9"); d.Mode&unix.S_IFMT != unix.S_IFBLK || unix.Minor(d.Rdev) != 9 {
				t.Errorf("dev/loop9: mode %o", d.Mode)
			}
			if d := stat(t, root+"/run.fifo"); d.Mode&unix.S_IFMT != unix.S_IFIFO || d.Mode&0o777 != 0o620 {
				t.Errorf("fifo: mode %o", d.Mode)
			}
			if got := readFile(t, root+"/deep/implicit/file"); got != "made without its directories" {
				t.Errorf("implicit: %q", got)
			}
		})
	}
}

func mtime(st unix.Stat_t) time.Time { return time.Unix(st.Mtim.Sec, st.Mtim.Nsec) }

func keepAll(name string, _ *tar.Header) (string, bool) { return name, true }

func stat(t testing.TB, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestExtractKeepFilter(t *testing.T) {
	dest := t.TempDir()
	err := Extract(bytes.NewReader(simpleImage(t)), dest, func(name string) bool {
		return name != "rootfs/bin/hello" && name != "rootfs/etc"
	})
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dest, "rootfs")
	mustNotExist(t, root+"/bin/hello")
	mustNotExist(t, root+"/bin/hello2") // a hard link of a file left out goes with it
	mustExist(t, root+"/bin/hi")
	if got := readFile(t, root+"/etc/hostname"); got != "box\n" {
		t.Errorf("hostname %q", got) // kept, under an implicit directory
	}
}

func TestExtractLaterEntriesWin(t *testing.T) {
	dest := t.TempDir()
	img := buildTar(t, manifestEnt(t, "example.com/twice"),
		file("rootfs/a", "first"), hardlink("rootfs/keep", "rootfs/a"), file("rootfs/a", "second"),
		dir("rootfs/d"), dir("rootfs/d"))
	if err := Extract(bytes.NewReader(img), dest, nil); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, dest+"/rootfs/a"); got != "second" {
		t.Errorf("a = %q", got)
	}
	if got := readFile(t, dest+"/rootfs/keep"); got != "first" {
		t.Errorf("keep = %q (rewriting a must not change its old hard link)", got)
	}
}

// TestExtractHostileUnchecked proves the path resolution safe on its own:
// with validation off, nothing an image plants leads a write outside the
// rootfs, with openat2 and with the fallback walk.
func TestExtractHostileUnchecked(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		t.Run(map[bool]string{false: "openat2", true: "walk"}[fallback], func(t *testing.T) {
			base := t.TempDir()
			outside := filepath.Join(base, "outside")
			writeTree(t, outside, map[string]string{"victim": "untouched"})
			dest := filepath.Join(base, "dest")
			run := func(entries ...ent) error {
				return extract(bytes.NewReader(buildTar(t, entries...)), dest, extractOptions{route: keepAll, noOpenat2: fallback})
			}
			man := manifestEnt(t, "example.com/evil")

			// A relative symlink climbing out, then a write through it.
			if err := run(man, dir("rootfs/outside"), symlink("rootfs/up", "../../../outside"), file("rootfs/up/pwned", "x")); err != nil {
				t.Fatal(err)
			}
			mustNotExist(t, filepath.Join(outside, "pwned"))
			mustExist(t, filepath.Join(dest, "rootfs/outside/pwned"))

			// The same with nothing at the symlink's target inside the root.
			wantInvalid(t, run(man, symlink("rootfs/dangling", "../../../nowhere"), file("rootfs/dangling/pwned", "x")), `"rootfs/dangling/pwned"`)
			mustNotExist(t, filepath.Join(base, "nowhere"))

			// An absolute symlink to the real outside path is read inside the root.
			if err := os.MkdirAll(filepath.Join(dest, "rootfs", outside), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := run(man, symlink("rootfs/abs", outside), file("rootfs/abs/pwned2", "x")); err != nil {
				t.Fatal(err)
			}
			mustNotExist(t, filepath.Join(outside, "pwned2"))
			mustExist(t, filepath.Join(dest, "rootfs", outside, "pwned2"))

			// A symlink reaching dest/manifest from the rootfs stays in the rootfs.
			if err := run(man, symlink("rootfs/m", "/.."), file("rootfs/m/manifest", "overwritten"), file("rootfs/m/../../manifest", "x")); err == nil {
				t.Fatal("a name with .. was accepted")
			}
			if err := run(man, symlink("rootfs/m", "/.."), file("rootfs/m/manifest", "overwritten")); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, filepath.Join(dest, "manifest")); got == "overwritten" {
				t.Fatal("manifest overwritten through a symlink")
			}

			// A symlink at a file's own path is replaced, not followed.
			if err := run(man, symlink("rootfs/victim", filepath.Join(outside, "victim")), file("rootfs/victim", "pwned")); err != nil {
				t.Fatal(err)
			}
			if got := readFile(t, filepath.Join(outside, "victim")); got != "untouched" {
				t.Fatalf("victim = %q", got)
			}

			// A symlink replaced by a directory, then a file in it.
			if err := run(man, symlink("rootfs/sw", "../../outside"), dir("rootfs/sw"), file("rootfs/sw/f", "x")); err != nil {
				t.Fatal(err)
			}
			if fi := mustExist(t, filepath.Join(dest, "rootfs/sw")); !fi.IsDir() {
				t.Errorf("rootfs/sw is %v", fi.Mode())
			}
			mustNotExist(t, filepath.Join(outside, "f"))

			// Hard links out, and names that escape, are refused outright.
			wantInvalid(t, run(man, hardlink("rootfs/h", filepath.Join(outside, "victim"))), "outside the image root")
			wantInvalid(t, run(man, hardlink("rootfs/h", "rootfs/../../outside/victim")), "outside the image root")
			wantInvalid(t, run(man, file("rootfs/../../outside/victim", "pwned")), "escapes")
			wantInvalid(t, run(man, file(filepath.Join(outside, "victim"), "pwned")), "absolute")

			// A symlink loop is an error, not a hang.
			wantInvalid(t, run(man, symlink("rootfs/l1", "l2"), symlink("rootfs/l2", "l1"), file("rootfs/l1/x", "x")), "rootfs/l1/x")

			// A hard link through a planted symlink links inside the root only.
			if err := run(man, file("rootfs/in/secret", "s"), symlink("rootfs/in2", "../../outside"), hardlink("rootfs/in2/link", "rootfs/in/secret")); err != nil {
				t.Fatal(err)
			}
			mustNotExist(t, filepath.Join(outside, "link"))

			if got := readFile(t, filepath.Join(outside, "victim")); got != "untouched" {
				t.Fatalf("victim = %q", got)
			}
			entries, _ := os.ReadDir(outside)
			if len(entries) != 1 {
				t.Errorf("outside holds %d entries", len(entries))
			}
		})
	}
}

func TestExtractValidatesByDefault(t *testing.T) {
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	writeTree(t, outside, map[string]string{"victim": "untouched"})
	img := buildTar(t, manifestEnt(t, "example.com/evil"), symlink("rootfs/up", "../../../outside"), file("rootfs/up/pwned", "x"))
	err := Extract(bytes.NewReader(img), filepath.Join(base, "dest"), nil)
	wantInvalid(t, err, `"rootfs/up"`)
	mustNotExist(t, filepath.Join(outside, "pwned"))
}

func TestExtractRefusesToReplaceFullDirectory(t *testing.T) {
	img := buildTar(t, manifestEnt(t, "example.com/x"), file("rootfs/d/f", "f"), file("rootfs/d", "now a file"))
	err := extract(bytes.NewReader(img), t.TempDir(), extractOptions{route: keepAll})
	wantInvalid(t, err, `"rootfs/d"`, "non-empty directory")
}

func TestSparseFilesAreRefused(t *testing.T) {
	// A 16 GiB sparse file held in a 2.5 KiB tar: extracting its holes as
	// zeroes would fill the disk.
	data, err := os.ReadFile("testdata/sparse.tar")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Check(bytes.NewReader(data))
	wantInvalid(t, err, `"rootfs/big"`, "sparse")
	err = Extract(bytes.NewReader(data), t.TempDir(), nil)
	wantInvalid(t, err, `"rootfs/big"`, "sparse")
	err = extract(bytes.NewReader(data), t.TempDir(), extractOptions{route: keepAll})
	wantInvalid(t, err, `"rootfs/big"`, "sparse")
}

func TestAllowedXattr(t *testing.T) {
	for name, want := range map[string]bool{
		"user.mime_type":          true,
		"security.capability":     true,
		"trusted.overlay.opaque":  false,
		"trusted.anything":        false,
		"security.selinux":        false,
		"system.posix_acl_access": false,
		"":                        false,
	} {
		if got := allowedXattr(name); got != want {
			t.Errorf("allowedXattr(%q) = %v, want %v", name, got, want)
		}
	}
}
