package fetch

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/appc/spec/discovery"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"

	"github.com/orbit-containers/orbit/internal/errdefs"
	"github.com/orbit-containers/orbit/internal/insecure"
)

// This is appc meta discovery
// (https://github.com/appc/spec/blob/master/spec/discovery.md). The appc
// discovery package parses names (discovery.App) but its HTTP walk runs on
// a package-level client that takes no context, reads responses without a
// bound and cannot share the Fetcher's transport (credentials per domain,
// TLS options, the refusal of HTTPS-to-HTTP redirects), so the walk is
// done here, with the same rules.

// maxDiscoverySize bounds a discovery page.
const maxDiscoverySize = 1 << 20

// endpoint is where one image and its signature are.
type endpoint struct {
	ACI, ASC string
}

// discovered is what one discovery page offered for a name.
type discovered struct {
	Page      string // the page's URL
	Secure    bool   // fetched over HTTPS with a verified certificate
	Endpoints []endpoint
	Keys      []string
}

// attempt is one discovery page that did not answer, for the error.
type attempt struct {
	URL string
	Err error
}

var templateVar = regexp.MustCompile(`\{[^{}]*\}`)

type metaTag struct{ name, prefix, uri string }

// extractMeta reads the ac-* meta tags of an HTML page.
func extractMeta(page []byte) []metaTag {
	var out []metaTag
	z := html.NewTokenizer(bytes.NewReader(page))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return out
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			if tok.DataAtom != atom.Meta {
				continue
			}
			var m metaTag
			for _, a := range tok.Attr {
				switch a.Key {
				case "name":
					m.name = a.Val
				case "content":
					fields := strings.Fields(a.Val)
					if len(fields) == 2 {
						m.prefix, m.uri = fields[0], fields[1]
					}
				}
			}
			if strings.HasPrefix(m.name, "ac-") && m.prefix != "" && m.uri != "" {
				out = append(out, m)
			}
		}
	}
}

// render fills a template; ok is false when a variable is left unfilled.
func render(tpl string, vars map[string]string) (string, bool) {
	for k, v := range vars {
		tpl = strings.ReplaceAll(tpl, "{"+k+"}", v)
	}
	return tpl, !templateVar.MatchString(tpl)
}

// parseDiscovery reads the endpoints and keys a page offers for app.
func parseDiscovery(page []byte, app *discovery.App) (eps []endpoint, keys []string) {
	vars := map[string]string{}
	for k, v := range app.Labels {
		vars[k.String()] = v
	}
	vars["name"] = app.Name.String()
	name := app.Name.String()
	for _, m := range extractMeta(page) {
		if !strings.HasPrefix(name, m.prefix) {
			continue
		}
		switch m.name {
		case "ac-discovery":
			aciVars := cloneVars(vars, "aci")
			ascVars := cloneVars(vars, "aci.asc")
			aci, ok1 := render(m.uri, aciVars)
			asc, ok2 := render(m.uri, ascVars)
			if ok1 && ok2 {
				eps = append(eps, endpoint{ACI: aci, ASC: asc})
			}
		case "ac-discovery-pubkeys":
			keys = append(keys, m.uri)
		}
	}
	return eps, keys
}

func cloneVars(vars map[string]string, ext string) map[string]string {
	out := make(map[string]string, len(vars)+1)
	for k, v := range vars {
		out[k] = v
	}
	out["ext"] = ext
	return out
}

// discover walks up app's name (example.com/a/b, then example.com/a, then
// example.com) until a page offers what enough wants. Each level is asked
// over HTTPS and, if that fails and allowHTTP, over plain HTTP.
func (f *Fetcher) discover(ctx context.Context, app *discovery.App, allowHTTP bool, enough func(*discovered) bool) (*discovered, error) {
	parts := strings.Split(app.Name.String(), "/")
	var failed []attempt
	for end := len(parts); end > 0; end-- {
		prefix := strings.Join(parts[:end], "/")
		d, tried := f.discoverAt(ctx, prefix, app, allowHTTP)
		failed = append(failed, tried...)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if d != nil && enough(d) {
			return d, nil
		}
	}
	var msgs []string
	for _, a := range failed {
		msgs = append(msgs, a.Err.Error())
	}
	detail := ""
	if len(msgs) > 0 {
		detail = " (" + strings.Join(msgs, "; ") + ")"
	}
	hint := ""
	if !allowHTTP {
		hint = "; discovery uses HTTPS only unless --insecure-options=http"
	}
	var causes []error
	for _, a := range failed {
		causes = append(causes, a.Err)
	}
	return nil, &NotDiscoverableError{Name: app.Name.String(), Detail: detail, Hint: hint, Causes: causes}
}

// NotDiscoverableError is appc discovery finding no image for a name:
// Detail says what each attempt met. The command line rewords it with
// what the store holds (a misspelled name or version is the usual cause).
type NotDiscoverableError struct {
	Name, Detail, Hint string
	Causes             []error // what each attempt met
}

func (e *NotDiscoverableError) Error() string {
	return fmt.Sprintf("discovery of %s found nothing%s%s: %s", e.Name, e.Detail, e.Hint, errdefs.ErrNotFound)
}

func (e *NotDiscoverableError) Unwrap() error { return errdefs.ErrNotFound }

// discoverAt fetches one discovery page, over HTTPS, then HTTP if allowed.
func (f *Fetcher) discoverAt(ctx context.Context, prefix string, app *discovery.App, allowHTTP bool) (*discovered, []attempt) {
	schemes := []string{"https"}
	if allowHTTP {
		schemes = append(schemes, "http")
	}
	var failed []attempt
	for _, scheme := range schemes {
		u, err := url.Parse(scheme + "://" + prefix)
		if err != nil {
			failed = append(failed, attempt{prefix, err})
			continue
		}
		u.RawQuery = "ac-discovery=1"
		page, err := f.getSmall(ctx, u, maxDiscoverySize)
		if err != nil {
			failed = append(failed, attempt{u.String(), err})
			continue
		}
		eps, keys := parseDiscovery(page, app)
		f.log.Debug("discovery page", "url", u.String(), "images", len(eps), "keys", len(keys))
		return &discovered{
			Page:      u.String(),
			Secure:    scheme == "https" && !f.cfg.Insecure.Has(insecure.TLS),
			Endpoints: eps,
			Keys:      keys,
		}, failed
	}
	return nil, failed
}
