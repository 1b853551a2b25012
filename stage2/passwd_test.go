package stage2

import (
	"errors"
	"strings"
	"testing"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

const testPasswd = `# comment
root:x:0:0:root:/root:/bin/sh

+nisuser:::::::
broken:x:notanumber:0:::/bin/sh
short:x:5:5
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1000:1000:Alice Liddell:/home/alice:/bin/ash
alice:x:1001:1001:second alice:/nowhere:/bin/false
huge:x:4294967295:0:::/bin/sh
crlf:x:7:7::/crlf:/bin/sh` + "\r\n"

func TestFindPasswd(t *testing.T) {
	for _, tc := range []struct {
		name  string
		match func(passwdEntry) bool
		want  passwdEntry
		found bool
	}{
		{"by name", passwdByName("alice"), passwdEntry{"alice", 1000, 1000, "/home/alice", "/bin/ash"}, true},
		{"by uid", passwdByUID(1), passwdEntry{"daemon", 1, 1, "/usr/sbin", "/usr/sbin/nologin"}, true},
		{"root", passwdByUID(0), passwdEntry{"root", 0, 0, "/root", "/bin/sh"}, true},
		{"first of duplicates", passwdByName("alice"), passwdEntry{"alice", 1000, 1000, "/home/alice", "/bin/ash"}, true},
		{"carriage return", passwdByName("crlf"), passwdEntry{"crlf", 7, 7, "/crlf", "/bin/sh"}, true},
		{"missing", passwdByName("bob"), passwdEntry{}, false},
		{"comment is no entry", passwdByName("# comment"), passwdEntry{}, false},
		{"NIS line skipped", passwdByName("+nisuser"), passwdEntry{}, false},
		{"bad uid skipped", passwdByName("broken"), passwdEntry{}, false},
		{"too few fields skipped", passwdByName("short"), passwdEntry{}, false},
		{"uid -1 skipped", passwdByName("huge"), passwdEntry{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, found, err := findPasswd(strings.NewReader(testPasswd), tc.match)
			if err != nil {
				t.Fatal(err)
			}
			if found != tc.found || got != tc.want {
				t.Errorf("got %+v, %v; want %+v, %v", got, found, tc.want, tc.found)
			}
		})
	}
}

func TestFindGroup(t *testing.T) {
	const groups = "root:x:0:\nwheel:x:10:alice,bob\nbad:x:-3:\nnopw::20\n"
	for name, want := range map[string]int{"root": 0, "wheel": 10, "nopw": 20, "bad": -1, "none": -1} {
		got, found, err := findGroup(strings.NewReader(groups), groupByName(name))
		if err != nil {
			t.Fatal(err)
		}
		if (want < 0) == found || (found && got.GID != want) {
			t.Errorf("group %s: %+v %v, want %d", name, got, found, want)
		}
	}
}

func TestScanRejectsHugeLines(t *testing.T) {
	line := strings.Repeat("a", maxLine+1)
	_, _, err := findPasswd(strings.NewReader(line+"\nroot:x:0:0::/root:/bin/sh\n"), passwdByName("root"))
	if err == nil {
		t.Fatal("a line longer than the limit was accepted")
	}
}

func TestParseID(t *testing.T) {
	for s, ok := range map[string]bool{"0": true, "65534": true, "4294967294": true,
		"4294967295": false, "-1": false, "1e3": false, "": false, "99999999999999999999": false} {
		_, err := parseID(s)
		if (err == nil) != ok {
			t.Errorf("parseID(%q): %v", s, err)
		}
		if err != nil && !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("parseID(%q): %v is not ErrInvalid", s, err)
		}
	}
}
