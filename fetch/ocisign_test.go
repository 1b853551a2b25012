package fetch

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

func TestCheckPayload(t *testing.T) {
	digest := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	payload := func(ref, dgst, typ, extra string) []byte {
		return []byte(`{"critical":{"identity":{"docker-reference":"` + ref + `"},"image":{"docker-manifest-digest":"` + dgst + `"},"type":"` + typ + `"` + extra + `},"optional":{"creator":"x"}}`)
	}
	tag, _ := name.ParseReference("reg.example:5000/a/b:v1")
	pinned, _ := name.ParseReference("reg.example:5000/a/b@" + digest.String())
	parsed, _, err := parseOCIRef("docker://busybox:1")
	if err != nil || parsed.ref.Context().Name() != "registry-1.docker.io/library/busybox" {
		t.Fatalf("docker://busybox:1 is %v (%v), want registry-1.docker.io/library/busybox", parsed.ref, err)
	}
	hub := parsed.ref
	for _, c := range []struct {
		name string
		data []byte
		ref  name.Reference
		ok   bool
	}{
		{"exact", payload("reg.example:5000/a/b:v1", digest.String(), simpleSigningType, ""), tag, true},
		{"other tag", payload("reg.example:5000/a/b:v2", digest.String(), simpleSigningType, ""), tag, false},
		{"digest ref, any tag", payload("reg.example:5000/a/b:v2", digest.String(), simpleSigningType, ""), pinned, true},
		{"other repo", payload("reg.example:5000/a/c:v1", digest.String(), simpleSigningType, ""), tag, false},
		{"wrong digest", payload("reg.example:5000/a/b:v1", "sha256:"+strings.Repeat("cd", 32), simpleSigningType, ""), tag, false},
		{"wrong type", payload("reg.example:5000/a/b:v1", digest.String(), cosignType, ""), tag, false},
		{"unknown critical field", payload("reg.example:5000/a/b:v1", digest.String(), simpleSigningType, `,"extra":1`), tag, false},
		{"docker hub aliases", payload("docker.io/library/busybox:1", digest.String(), simpleSigningType, ""), hub, true},
		{"not json", []byte("nope"), tag, false},
	} {
		err := checkPayload(c.data, simpleSigningType, c.ref, digest)
		if (err == nil) != c.ok {
			t.Errorf("%s: err %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && !errors.Is(err, errdefs.ErrUntrusted) {
			t.Errorf("%s: %v is not ErrUntrusted", c.name, err)
		}
	}
}

func TestRegistriesD(t *testing.T) {
	containers, system, local := t.TempDir(), t.TempDir(), t.TempDir()
	write := func(dir, file, data string) {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(containers, "default.yaml", "default-docker:\n  lookaside: file:///var/lib/containers/sigstore\ndocker:\n  reg.example:\n    lookaside: https://containers.example/sigs\n")
	write(system, "a.yaml", "docker:\n  reg.example/team:\n    sigstore: https://team.example/sigs\n")
	write(local, "b.yaml", "docker:\n  reg.example:\n    lookaside: https://local.example/sigs\n    use-sigstore-attachments: true\n")
	cfg, err := loadRegistriesD(containers, system, local, filepath.Join(t.TempDir(), "missing"))
	if err != nil {
		t.Fatal(err)
	}
	for repo, want := range map[string]string{
		"reg.example/team/app":  "https://team.example/sigs",  // most specific namespace
		"reg.example/other/app": "https://local.example/sigs", // local overrides containers'
		"elsewhere.example/app": "file:///var/lib/containers/sigstore",
	} {
		if got := cfg.sourceFor(repo).lookaside(); got != want {
			t.Errorf("%s: lookaside %q, want %q", repo, got, want)
		}
	}
	if s := cfg.sourceFor("reg.example/x"); s.UseSigstoreAttachments == nil || !*s.UseSigstoreAttachments {
		t.Errorf("use-sigstore-attachments not read")
	}
	write(local, "c.yaml", "docker:\n  reg.example:\n    lookaside: https://twice.example\n")
	if _, err := loadRegistriesD(local); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("a namespace in two files of one directory: %v", err)
	}
	write(system, "bad.yaml", "docker: [")
	if _, err := loadRegistriesD(system); !errors.Is(err, errdefs.ErrInvalid) || strings.Contains(err.Error(), "\n") {
		t.Errorf("malformed YAML: %v", err)
	}
}

func TestTrustPrefix(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5000/demo/app":          "127.0.0.1_5000/demo/app",
		"docker://registry.example/a/b":    "registry.example/a/b",
		"example.com/app":                  "example.com/app",
		"https://example.com/x":            "https://example.com/x",
		"docker://127.0.0.1:5000/demo/app": "127.0.0.1_5000/demo/app",
	} {
		if got := TrustPrefix(in); got != want {
			t.Errorf("TrustPrefix(%q) = %q, want %q", in, got, want)
		}
	}
}
