package fetch

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// AuthEntry is one domain's credentials, as an rkt "auth" v1 configuration
// file gives them (Documentation/commands/config.md).
type AuthEntry struct {
	Kind        string            `json:"rktKind"`
	Version     string            `json:"rktVersion"`
	Domains     []string          `json:"domains"`
	Type        string            `json:"type"`
	Credentials map[string]string `json:"credentials"`
	source      string
}

// Auth maps a host (with its port, if the configuration names one) to the
// credentials to send it.
type Auth map[string]AuthEntry

// maxConfigSize bounds a configuration file.
const maxConfigSize = 1 << 20

// LoadAuth reads <dir>/auth.d/*.json from each configuration directory,
// later directories overriding earlier ones domain by domain: pass system,
// local, user. Within one directory a domain may be named only once. Files
// of other kinds (dockerAuth, paths...) are left alone.
func LoadAuth(dirs ...string) (Auth, error) {
	merged := Auth{}
	for _, dir := range dirs {
		if dir == "" {
			continue
		}
		layer, err := loadAuthDir(filepath.Join(dir, "auth.d"))
		if err != nil {
			return nil, err
		}
		for host, e := range layer {
			merged[host] = e
		}
	}
	return merged, nil
}

func loadAuthDir(dir string) (Auth, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	layer := Auth{}
	for _, ent := range entries {
		p := filepath.Join(dir, ent.Name())
		if !strings.HasSuffix(ent.Name(), ".json") {
			continue
		}
		info, err := os.Stat(p)
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		if info.Size() > maxConfigSize {
			return nil, fmt.Errorf("%s: larger than %d bytes: %w", p, maxConfigSize, errdefs.ErrInvalid)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		e, ok, err := parseAuthFile(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if !ok {
			continue
		}
		e.source = p
		for _, d := range e.Domains {
			if prev, dup := layer[d]; dup {
				return nil, fmt.Errorf("%s: domain %q is configured in %s too: %w", p, d, prev.source, errdefs.ErrInvalid)
			}
			one := e
			one.Domains = []string{d}
			layer[d] = one
		}
	}
	return layer, nil
}

// parseAuthFile reads one configuration file; ok is false for files of
// another kind.
func parseAuthFile(data []byte) (e AuthEntry, ok bool, err error) {
	var head struct {
		Kind    string `json:"rktKind"`
		Version string `json:"rktVersion"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return e, false, fmt.Errorf("not valid JSON: %w: %w", err, errdefs.ErrInvalid)
	}
	if head.Kind == "" || head.Version == "" {
		return e, false, fmt.Errorf("rktKind and rktVersion must be set: %w", errdefs.ErrInvalid)
	}
	if head.Kind != "auth" {
		return e, false, nil
	}
	if head.Version != "v1" {
		return e, false, fmt.Errorf("auth configuration version %q is not supported (want v1): %w", head.Version, errdefs.ErrInvalid)
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return e, false, fmt.Errorf("auth configuration: %w: %w", err, errdefs.ErrInvalid)
	}
	if len(e.Domains) == 0 {
		return e, false, fmt.Errorf("auth configuration: domains must not be empty: %w", errdefs.ErrInvalid)
	}
	for _, d := range e.Domains {
		if d == "" || strings.ContainsAny(d, "/ \t@") {
			return e, false, fmt.Errorf("auth configuration: domain %q is not a host[:port]: %w", d, errdefs.ErrInvalid)
		}
	}
	switch e.Type {
	case "basic":
		if e.Credentials["user"] == "" || e.Credentials["password"] == "" {
			return e, false, fmt.Errorf("auth configuration: basic credentials need user and password: %w", errdefs.ErrInvalid)
		}
	case "oauth", "bearer":
		if e.Credentials["token"] == "" {
			return e, false, fmt.Errorf("auth configuration: %s credentials need a token: %w", e.Type, errdefs.ErrInvalid)
		}
	default:
		return e, false, fmt.Errorf("auth configuration: type %q is not supported (basic, oauth): %w", e.Type, errdefs.ErrInvalid)
	}
	return e, true, nil
}

// header is the Authorization header value for host, if any is configured.
func (a Auth) header(host string) (string, bool) {
	e, ok := a[host]
	if !ok {
		return "", false
	}
	switch e.Type {
	case "basic":
		raw := e.Credentials["user"] + ":" + e.Credentials["password"]
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(raw)), true
	default:
		return "Bearer " + e.Credentials["token"], true
	}
}

// apply sets the credentials for req's host on req. Credentials go only
// over HTTPS unless plain HTTP was allowed with --insecure-options=http.
func (a Auth) apply(req *http.Request, allowHTTP bool) {
	if req.URL.Scheme != "https" && !allowHTTP {
		return
	}
	if v, ok := a.header(req.URL.Host); ok {
		req.Header.Set("Authorization", v)
	}
}

// Entries lists the merged configuration one domain per entry, sorted by
// domain, as `orbit config` prints it.
func (a Auth) Entries() []AuthEntry {
	out := make([]AuthEntry, 0, len(a))
	for _, e := range a {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Domains[0] < out[j].Domains[0] })
	return out
}
