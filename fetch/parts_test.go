package fetch

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/discovery"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func TestLoadAuthOverrides(t *testing.T) {
	dir := t.TempDir()
	sys, local, user := filepath.Join(dir, "sys"), filepath.Join(dir, "local"), filepath.Join(dir, "user")
	writeAuth(t, filepath.Join(sys, "auth.d", "a.json"), `{"rktKind":"auth","rktVersion":"v1","domains":["a.com","b.com","c.com"],"type":"oauth","credentials":{"token":"common"}}`)
	writeAuth(t, filepath.Join(local, "auth.d", "b.json"), `{"rktKind":"auth","rktVersion":"v1","domains":["b.com"],"type":"basic","credentials":{"user":"foo","password":"bar"}}`)
	writeAuth(t, filepath.Join(user, "auth.d", "c.json"), `{"rktKind":"auth","rktVersion":"v1","domains":["c.com"],"type":"oauth","credentials":{"token":"mine"}}`)
	writeAuth(t, filepath.Join(local, "auth.d", "docker.json"), `{"rktKind":"dockerAuth","rktVersion":"v1","registries":["quay.io"],"credentials":{"user":"u","password":"p"}}`)
	writeAuth(t, filepath.Join(local, "auth.d", "README"), `not json`)
	a, err := LoadAuth(sys, local, user)
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]string{"a.com": "Bearer common", "b.com": "Basic Zm9vOmJhcg==", "c.com": "Bearer mine"} {
		if got, _ := a.header(host); got != want {
			t.Errorf("%s: %q, want %q", host, got, want)
		}
	}
	if _, ok := a.header("d.com"); ok {
		t.Error("credentials for an unconfigured host")
	}
	entries := a.Entries()
	if len(entries) != 3 || entries[0].Domains[0] != "a.com" || len(entries[1].Domains) != 1 {
		t.Fatalf("entries %+v", entries)
	}
	// Credentials never go over plain HTTP unless allowed.
	req, _ := http.NewRequest("GET", "http://b.com/x", nil)
	a.apply(req, false)
	if req.Header.Get("Authorization") != "" {
		t.Fatal("credentials sent over plain HTTP")
	}
	a.apply(req, true)
	if req.Header.Get("Authorization") == "" {
		t.Fatal("credentials not sent with --insecure-options=http")
	}
}

func TestLoadAuthErrors(t *testing.T) {
	for name, content := range map[string]string{
		"bad json":     `{`,
		"no kind":      `{"rktVersion":"v1"}`,
		"bad version":  `{"rktKind":"auth","rktVersion":"v9","domains":["a"],"type":"basic","credentials":{"user":"u","password":"p"}}`,
		"no domains":   `{"rktKind":"auth","rktVersion":"v1","domains":[],"type":"basic","credentials":{"user":"u","password":"p"}}`,
		"bad type":     `{"rktKind":"auth","rktVersion":"v1","domains":["a"],"type":"digest","credentials":{}}`,
		"no password":  `{"rktKind":"auth","rktVersion":"v1","domains":["a"],"type":"basic","credentials":{"user":"u"}}`,
		"no token":     `{"rktKind":"auth","rktVersion":"v1","domains":["a"],"type":"oauth","credentials":{}}`,
		"domain paths": `{"rktKind":"auth","rktVersion":"v1","domains":["a/b"],"type":"oauth","credentials":{"token":"t"}}`,
	} {
		dir := t.TempDir()
		writeAuth(t, filepath.Join(dir, "auth.d", "x.json"), content)
		if _, err := LoadAuth(dir); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	dir := t.TempDir()
	one := `{"rktKind":"auth","rktVersion":"v1","domains":["a.com"],"type":"oauth","credentials":{"token":"t"}}`
	writeAuth(t, filepath.Join(dir, "auth.d", "1.json"), one)
	writeAuth(t, filepath.Join(dir, "auth.d", "2.json"), one)
	if _, err := LoadAuth(dir); !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "a.com") {
		t.Errorf("duplicate domain in one directory: %v", err)
	}
	if a, err := LoadAuth(filepath.Join(dir, "missing")); err != nil || len(a) != 0 {
		t.Errorf("missing directory: %v %v", a, err)
	}
}

func TestParseCacheInfo(t *testing.T) {
	h := http.Header{}
	h.Set("ETag", `"abc"`)
	h.Set("Cache-Control", "public, max-age=600")
	if ci := parseCacheInfo(h); ci.ETag != `"abc"` || ci.MaxAge != 10*time.Minute {
		t.Fatalf("%+v", ci)
	}
	h.Set("Cache-Control", "max-age=600, no-cache")
	if ci := parseCacheInfo(h); ci.MaxAge != 0 {
		t.Fatalf("no-cache kept max-age: %+v", ci)
	}
	h.Set("Cache-Control", "max-age=-5")
	if ci := parseCacheInfo(h); ci.MaxAge != 0 {
		t.Fatalf("negative max-age: %+v", ci)
	}
}

func TestParseDiscovery(t *testing.T) {
	page := []byte(`<html><head>
<meta name="ac-discovery" content="example.com/hello https://example.com/{name}-{version}-{os}-{arch}.{ext}">
<meta name="ac-discovery" content="example.com/hello https://mirror.example.com/{name}-{channel}.{ext}">
<meta name="ac-discovery" content="other.org https://other.org/{name}.{ext}">
<meta name="ac-discovery-pubkeys" content="example.com https://example.com/pubkeys.gpg">
<meta name="description" content="not for us">
</head><body></body></html>`)
	app, err := discovery.NewAppFromString("example.com/hello:1.0,os=linux,arch=amd64")
	if err != nil {
		t.Fatal(err)
	}
	eps, keys := parseDiscovery(page, app)
	// The {channel} template cannot be filled and is skipped, as is the
	// other prefix.
	if len(eps) != 1 || eps[0].ACI != "https://example.com/example.com/hello-1.0-linux-amd64.aci" || eps[0].ASC != "https://example.com/example.com/hello-1.0-linux-amd64.aci.asc" {
		t.Fatalf("endpoints %+v", eps)
	}
	if len(keys) != 1 || keys[0] != "https://example.com/pubkeys.gpg" {
		t.Fatalf("keys %v", keys)
	}
}

func TestClassify(t *testing.T) {
	dir := t.TempDir()
	existing := filepath.Join(dir, "img")
	os.WriteFile(existing, nil, 0o644)
	wd, _ := os.Getwd()
	defer os.Chdir(wd)
	os.Chdir(dir)
	for ref, want := range map[string]refKind{
		"sha512-abcd":                 refID,
		"https://example.com/x.aci":   refURL,
		"http://127.0.0.1:8000/o.aci": refURL,
		"docker://busybox":            refURL,
		"file:///tmp/x.aci":           refFile,
		"./out.aci":                   refFile,
		"out.aci":                     refFile,
		"/abs/path":                   refFile,
		"img":                         refFile,
		"example.com/hello:1.0":       refName,
		"example.com/hello,os=linux":  refName,
	} {
		if got := classify(ref); got != want {
			t.Errorf("classify(%q) = %d, want %d", ref, got, want)
		}
	}
}

func TestParsePullPolicy(t *testing.T) {
	for s, want := range map[string]PullPolicy{"never": PullNever, "new": PullNew, "update": PullUpdate} {
		got, err := ParsePullPolicy(s)
		if err != nil || got != want || got.String() != s {
			t.Errorf("%s: %v %v", s, got, err)
		}
	}
	if _, err := ParsePullPolicy("always"); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("bad policy: %v", err)
	}
}

func TestProgressBar(t *testing.T) {
	var out strings.Builder
	clock := time.Unix(0, 0)
	p := newProgressBar(&out, "Downloading x", 2048, func() time.Time { clock = clock.Add(time.Second); return clock })
	p.Write(make([]byte, 1024))
	p.Write(make([]byte, 1024))
	p.Done()
	s := out.String()
	if !strings.Contains(s, "2.0 KiB / 2.0 KiB (100%)") || !strings.HasSuffix(s, "\n") || !strings.Contains(s, "/s") {
		t.Fatalf("progress output %q", s)
	}
	if humanBytes(5) != "5 B" || humanBytes(3<<20) != "3.0 MiB" {
		t.Fatal(humanBytes(5), humanBytes(3<<20))
	}
}
