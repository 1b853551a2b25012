package stage2

import (
	"sort"
	"strings"

	"github.com/appc/spec/schema/types"
)

// DefaultPath is the PATH an app gets unless its image or the command line
// sets one (appc, "Execution Environment").
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// userInfo is what the default environment says about the app's user.
type userInfo struct {
	name, home, shell string
}

// defaultEnvironment is the environment every app starts from.
func defaultEnvironment(appName string, u userInfo, term string) map[string]string {
	env := map[string]string{
		"PATH":        DefaultPath,
		"HOME":        u.home,
		"SHELL":       u.shell,
		"AC_APP_NAME": appName,
	}
	if u.name != "" {
		env["USER"] = u.name
		env["LOGNAME"] = u.name
	}
	if term != "" {
		env["TERM"] = term
	}
	return env
}

// mergeEnvironment lays the image's environment and then the overrides
// ("K=V"; entries without "=" or with an empty name are ignored) over
// defaults, later values winning, and returns "K=V" entries sorted by name.
// AC_APP_NAME is the executor's to set (appc): neither the image nor the
// command line changes it.
func mergeEnvironment(env map[string]string, image types.Environment, overrides []string) []string {
	name := env["AC_APP_NAME"]
	for _, v := range image {
		env[v.Name] = v.Value
	}
	for _, kv := range overrides {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			continue
		}
		env[k] = v
	}
	env["AC_APP_NAME"] = name
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// SetEnv sets name to value in env ("K=V" entries), replacing every entry
// of that name, and keeps env sorted: a process sees the value set here,
// whatever the image or the command line gave.
func SetEnv(env []string, name, value string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != name {
			out = append(out, kv)
		}
	}
	out = append(out, name+"="+value)
	sort.Strings(out)
	return out
}
