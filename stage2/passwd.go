package stage2

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// maxID is the largest valid uid or gid: (uid_t)-1 means "unchanged" to the
// kernel's set*id calls.
const maxID = 1<<32 - 2

// passwdEntry is one line of an /etc/passwd file.
type passwdEntry struct {
	Name  string
	UID   int
	GID   int
	Home  string
	Shell string
}

// groupEntry is one line of an /etc/group file.
type groupEntry struct {
	Name string
	GID  int
}

// parseID parses a decimal uid or gid.
func parseID(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > maxID {
		return 0, fmt.Errorf("id %q out of range: %w", s, errdefs.ErrInvalid)
	}
	return int(n), nil
}

// isNumeric reports whether s is a non-empty string of ASCII digits.
func isNumeric(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// maxLine bounds one line of a passwd or group file: an image's files are
// untrusted and must not make the launcher allocate without limit.
const maxLine = 64 << 10

// scanColonFile calls fn with the fields of each line of an /etc/passwd-like
// file, skipping blank lines, comments, NIS compat lines (+/-) and lines
// with fewer than minFields fields. It stops early when fn returns true.
func scanColonFile(r io.Reader, minFields int, fn func(fields []string) bool) error {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 4096), maxLine)
	for s.Scan() {
		line := strings.TrimRight(s.Text(), "\r")
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		fields := strings.Split(line, ":")
		if len(fields) < minFields {
			continue
		}
		if fn(fields) {
			return nil
		}
	}
	return s.Err()
}

// findPasswd returns the first passwd entry that match accepts.
func findPasswd(r io.Reader, match func(passwdEntry) bool) (passwdEntry, bool, error) {
	var found passwdEntry
	var ok bool
	err := scanColonFile(r, 7, func(f []string) bool {
		uid, err1 := parseID(f[2])
		gid, err2 := parseID(f[3])
		if err1 != nil || err2 != nil || f[0] == "" {
			return false
		}
		e := passwdEntry{Name: f[0], UID: uid, GID: gid, Home: f[5], Shell: f[6]}
		if match(e) {
			found, ok = e, true
			return true
		}
		return false
	})
	return found, ok, err
}

// findGroup returns the first group entry that match accepts.
func findGroup(r io.Reader, match func(groupEntry) bool) (groupEntry, bool, error) {
	var found groupEntry
	var ok bool
	err := scanColonFile(r, 3, func(f []string) bool {
		gid, err := parseID(f[2])
		if err != nil || f[0] == "" {
			return false
		}
		e := groupEntry{Name: f[0], GID: gid}
		if match(e) {
			found, ok = e, true
			return true
		}
		return false
	})
	return found, ok, err
}

func passwdByName(name string) func(passwdEntry) bool {
	return func(e passwdEntry) bool { return e.Name == name }
}

func passwdByUID(uid int) func(passwdEntry) bool {
	return func(e passwdEntry) bool { return e.UID == uid }
}

func groupByName(name string) func(groupEntry) bool {
	return func(e groupEntry) bool { return e.Name == name }
}
