package stage2

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/inroot"
)

// idRoot makes a root filesystem with passwd and group files.
func idRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:100:Alice:/home/alice:/bin/ash\n")
	write("etc/group", "root:x:0:\nusers:x:100:\nstaff:x:50:alice\n")
	write("owned", "")
	return root
}

func TestLookupUser(t *testing.T) {
	root := idRoot(t)
	owned := filepath.Join(root, "owned")
	if os.Geteuid() == 0 {
		if err := os.Chown(owned, 1000, 50); err != nil {
			t.Fatal(err)
		}
	}
	ownerUID := os.Geteuid()
	if ownerUID == 0 {
		ownerUID = 1000
	}
	for _, tc := range []struct {
		user      string
		uid, gid  int
		home      string
		errorIs   error
		needsRoot bool
	}{
		{user: "alice", uid: 1000, gid: 100, home: "/home/alice"},
		{user: "root", uid: 0, gid: 0, home: "/root"},
		{user: "", uid: 0, gid: 0, home: "/root"},
		{user: "1000", uid: 1000, gid: 100, home: "/home/alice"},
		{user: "4242", uid: 4242, gid: -1},
		{user: "/owned", uid: ownerUID, gid: 100, home: "/home/alice", needsRoot: true},
		{user: "bob", errorIs: errdefs.ErrNotFound},
		{user: "/missing", errorIs: errdefs.ErrNotFound},
		{user: "4294967295", errorIs: errdefs.ErrInvalid},
	} {
		if tc.needsRoot && os.Geteuid() != 0 {
			continue
		}
		uid, gid, home, err := LookupUser(root, tc.user)
		if tc.errorIs != nil {
			if !errors.Is(err, tc.errorIs) {
				t.Errorf("LookupUser(%q): %v, want %v", tc.user, err, tc.errorIs)
			}
			continue
		}
		if err != nil || uid != tc.uid || gid != tc.gid || home != tc.home {
			t.Errorf("LookupUser(%q) = %d %d %q %v, want %d %d %q", tc.user, uid, gid, home, err, tc.uid, tc.gid, tc.home)
		}
	}
}

func TestLookupGroup(t *testing.T) {
	root := idRoot(t)
	for _, tc := range []struct {
		group   string
		gid     int
		errorIs error
	}{
		{group: "staff", gid: 50},
		{group: "users", gid: 100},
		{group: "", gid: 0},
		{group: "77", gid: 77},
		{group: "/owned", gid: os.Getegid()},
		{group: "nogroup", errorIs: errdefs.ErrNotFound},
		{group: "/etc/nothing", errorIs: errdefs.ErrNotFound},
		{group: "99999999999", errorIs: errdefs.ErrInvalid},
	} {
		gid, err := lookupGroupAt(root, tc.group)
		if tc.errorIs != nil {
			if !errors.Is(err, tc.errorIs) {
				t.Errorf("lookupGroupAt(%q): %v, want %v", tc.group, err, tc.errorIs)
			}
			continue
		}
		if err != nil || gid != tc.gid {
			t.Errorf("lookupGroupAt(%q) = %d %v, want %d", tc.group, gid, err, tc.gid)
		}
	}
}

func TestLookupWithoutFiles(t *testing.T) {
	root := t.TempDir()
	if uid, gid, _, err := LookupUser(root, "33"); err != nil || uid != 33 || gid != -1 {
		t.Errorf("numeric user without passwd: %d %d %v", uid, gid, err)
	}
	if _, _, _, err := LookupUser(root, "alice"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("named user without passwd: %v", err)
	}
	if _, err := lookupGroupAt(root, "staff"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("named group without group file: %v", err)
	}
	// root is 0 in every image, as in rkt.
	if uid, gid, _, err := LookupUser(root, "root"); err != nil || uid != 0 || gid != -1 {
		t.Errorf("root without passwd: %d %d %v", uid, gid, err)
	}
	if gid, err := lookupGroupAt(root, "root"); err != nil || gid != 0 {
		t.Errorf("root group without group file: %d %v", gid, err)
	}
}

// The image's files are read inside its root: links out of it resolve
// within it, and odd file types are refused.
func TestLookupStaysInsideRoot(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "passwd"), []byte("host:x:1:1::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../../../.."+outside+"/passwd", filepath.Join(root, "etc", "passwd")); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := LookupUser(root, "host"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("passwd link out of the root was followed: %v", err)
	}
	if _, _, _, err := LookupUser(root, outside+"/passwd"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("a path user was looked up outside the root: %v", err)
	}
	if err := os.Remove(filepath.Join(root, "etc", "passwd")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "etc", "passwd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := LookupUser(root, "host"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("a directory as /etc/passwd: %v", err)
	}
}

// lookupGroupAt is lookupGroup on the root at a path.
func lookupGroupAt(root, group string) (int, error) {
	r, err := inroot.OpenRoot(root)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	return lookupGroup(r, group)
}
