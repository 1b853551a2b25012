package stage2

import (
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/inroot"
)

// LookupUser resolves an appc user string inside the root filesystem root:
// a decimal uid, a name from root's /etc/passwd, or an absolute path inside
// root whose owner is the user. An empty string means uid 0. gid and home
// come from the user's passwd entry; without one, gid is -1 and home is
// empty. A name that is not in /etc/passwd, or a path that does not exist,
// wraps errdefs.ErrNotFound; a malformed number wraps errdefs.ErrInvalid.
// The host's user database (NSS) is never consulted.
func LookupUser(root, user string) (uid, gid int, home string, err error) {
	r, err := inroot.OpenRoot(root)
	if err != nil {
		return 0, -1, "", err
	}
	defer r.Close()
	e, found, err := lookupUser(r, user)
	if err != nil {
		return 0, -1, "", err
	}
	if !found {
		return e.UID, -1, "", nil
	}
	return e.UID, e.GID, e.Home, nil
}

// lookupUser resolves user inside root. found reports whether the user has
// a passwd entry; without one only e.UID is set.
func lookupUser(root *inroot.Root, user string) (e passwdEntry, found bool, err error) {
	switch {
	case user == "":
		e.UID = 0
	case isNumeric(user):
		if e.UID, err = parseID(user); err != nil {
			return e, false, fmt.Errorf("user %q: %w", user, err)
		}
	case path.IsAbs(user):
		st, err := statInRoot(root, user)
		if err != nil {
			return e, false, fmt.Errorf("user %q: %w", user, err)
		}
		e.UID = int(st.Uid)
	default:
		e, found, err = searchPasswd(root, passwdByName(user))
		if user == "root" && !found && (err == nil || errors.Is(err, errdefs.ErrNotFound)) {
			// root is uid 0 in every image, as in rkt, even one with
			// no /etc/passwd (or none naming it).
			return passwdEntry{UID: 0}, false, nil
		}
		if err != nil {
			return e, false, fmt.Errorf("user %q: %w", user, err)
		}
		if !found {
			return e, false, fmt.Errorf("user %q not in /etc/passwd: %w", user, errdefs.ErrNotFound)
		}
		return e, true, nil
	}
	uid := e.UID
	byUID, found, err := searchPasswd(root, passwdByUID(uid))
	if err != nil && !errors.Is(err, errdefs.ErrNotFound) {
		return e, false, fmt.Errorf("user %q: %w", user, err)
	}
	if !found {
		return passwdEntry{UID: uid}, false, nil
	}
	return byUID, true, nil
}

// lookupGroup resolves an appc group string inside root: a decimal gid, a
// name from root's /etc/group, or an absolute path inside root whose group
// is used. An empty string means gid 0. Errors are classed as LookupUser's.
func lookupGroup(root *inroot.Root, group string) (int, error) {
	switch {
	case group == "":
		return 0, nil
	case isNumeric(group):
		gid, err := parseID(group)
		if err != nil {
			return 0, fmt.Errorf("group %q: %w", group, err)
		}
		return gid, nil
	case path.IsAbs(group):
		st, err := statInRoot(root, group)
		if err != nil {
			return 0, fmt.Errorf("group %q: %w", group, err)
		}
		return int(st.Gid), nil
	}
	f, err := openRootFile(root, "/etc/group")
	if err != nil {
		if group == "root" && errors.Is(err, errdefs.ErrNotFound) {
			// root is gid 0 in every image, as in rkt.
			return 0, nil
		}
		return 0, fmt.Errorf("group %q: %w", group, err)
	}
	defer f.Close()
	e, found, err := findGroup(io.LimitReader(f, maxIDFile), groupByName(group))
	if err != nil {
		return 0, fmt.Errorf("group %q: /etc/group: %w", group, err)
	}
	if !found && group == "root" {
		return 0, nil
	}
	if !found {
		return 0, fmt.Errorf("group %q not in /etc/group: %w", group, errdefs.ErrNotFound)
	}
	return e.GID, nil
}

// searchPasswd looks through root's /etc/passwd. A missing file wraps
// errdefs.ErrNotFound.
func searchPasswd(root *inroot.Root, match func(passwdEntry) bool) (passwdEntry, bool, error) {
	f, err := openRootFile(root, "/etc/passwd")
	if err != nil {
		return passwdEntry{}, false, err
	}
	defer f.Close()
	e, found, err := findPasswd(io.LimitReader(f, maxIDFile), match)
	if err != nil {
		return passwdEntry{}, false, fmt.Errorf("/etc/passwd: %w", err)
	}
	return e, found, nil
}
