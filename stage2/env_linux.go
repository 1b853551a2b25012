package stage2

import (
	"os"

	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/inroot"
)

// Environment builds an app's environment the appc way, for an app that
// runs as root: first the defaults (PATH, HOME, USER, LOGNAME and SHELL from
// root's entry in root/etc/passwd, or /root, root and /bin/sh without one;
// TERM when the caller's environment has it; AC_APP_NAME), then the
// image's app.environment, then overrides ("K=V", as given to --set-env).
// Later values win; the result is sorted by name.
func Environment(root, appName string, image types.Environment, overrides []string) []string {
	return EnvironmentForUser(root, appName, "0", image, overrides)
}

// EnvironmentForUser is Environment for an app that runs as user (an appc
// user string, see LookupUser): HOME, USER, LOGNAME and SHELL come from
// that user's passwd entry. A user without one gets HOME=/ and no USER or
// LOGNAME (root: HOME=/root, USER=root).
func EnvironmentForUser(root, appName, user string, image types.Environment, overrides []string) []string {
	return mergeEnvironment(defaultEnvironment(appName, userInfoIn(root, user), os.Getenv("TERM")), image, overrides)
}

// userInfoIn returns the default-environment facts about user in root,
// falling back to defaults when root or its passwd file cannot say.
func userInfoIn(root, user string) userInfo {
	u := userInfo{home: "/", shell: "/bin/sh"}
	uid := -1
	r, err := inroot.OpenRoot(root)
	if err == nil {
		defer r.Close()
		e, found, err := lookupUser(r, user)
		if err == nil {
			uid = e.UID
		}
		if err == nil && found {
			u.name = e.Name
			if e.Home != "" {
				u.home = e.Home
			}
			if e.Shell != "" {
				u.shell = e.Shell
			}
			return u
		}
	}
	if uid == 0 || (uid == -1 && (user == "0" || user == "" || user == "root")) {
		u.name, u.home = "root", "/root"
	}
	return u
}
