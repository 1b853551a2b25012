package verify

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
)

// Keystore holds the trusted keys, in rkt's layout:
//
//	<config>/trustedkeys/root.d/<fingerprint>                  trusted for every image
//	<config>/trustedkeys/prefix.d/<prefix>/<fingerprint>       trusted for names under <prefix>
//
// Keys are read from both the system and the local configuration
// directories and written only to the local one. An empty file in the local
// directory disables the key of the same name in the system directory.
type Keystore struct {
	LocalDir  string // <local-config>/trustedkeys
	SystemDir string // <system-config>/trustedkeys

	// Now is the time keys and signatures are checked at; time.Now if nil.
	Now func() time.Time
	// Log receives warnings about unreadable key files; none if nil.
	Log *slog.Logger
}

// NewKeystore returns the keystore kept in the given configuration
// directories (rkt's --local-config and --system-config).
func NewKeystore(localConfig, systemConfig string) *Keystore {
	k := &Keystore{}
	if localConfig != "" {
		k.LocalDir = filepath.Join(localConfig, "trustedkeys")
	}
	if systemConfig != "" {
		k.SystemDir = filepath.Join(systemConfig, "trustedkeys")
	}
	return k
}

func (k *Keystore) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

func (k *Keystore) warn(msg string, args ...any) {
	if k.Log != nil {
		k.Log.Warn(msg, args...)
	}
}

// TrustedKey is one key of a keyring and where its trust comes from.
type TrustedKey struct {
	Entity      *openpgp.Entity
	Fingerprint string
	Prefix      string // "" for a root key
	Path        string
}

// ParsePrefix checks that prefix can scope trust: it must be a valid appc
// name (lowercase letters, digits and -._~/ separators, no empty, "." or
// ".." component), which also makes it a safe relative path under
// prefix.d, used there unchanged as rkt does.
func ParsePrefix(prefix string) (string, error) {
	if strings.Contains(prefix, "://") {
		return "", fmt.Errorf("prefix %q must not contain a URL scheme: %w", prefix, errdefs.ErrInvalid)
	}
	id, err := types.NewACIdentifier(prefix)
	if err != nil {
		return "", fmt.Errorf("prefix %q is not a valid image name prefix: %w: %w", prefix, err, errdefs.ErrInvalid)
	}
	// NewACIdentifier checks characters and edges only; the spec's full
	// pattern also keeps every path component non-empty and alphanumeric
	// at both ends, so no "", "." or ".." component reaches the filesystem.
	if !types.ValidACIdentifier.MatchString(prefix) {
		return "", fmt.Errorf("prefix %q is not a valid image name prefix: each part between slashes must start and end with a lowercase letter or digit: %w", prefix, errdefs.ErrInvalid)
	}
	return id.String(), nil
}

// relDir is the directory, relative to a trustedkeys directory, that holds
// the keys for prefix ("" for root keys).
func relDir(prefix string) string {
	if prefix == "" {
		return "root.d"
	}
	return filepath.Join("prefix.d", filepath.FromSlash(prefix))
}

// AddPrefix trusts e for every image whose name is prefix or lies below it,
// and returns the file it was written to.
func (k *Keystore) AddPrefix(prefix string, e *openpgp.Entity) (string, error) {
	p, err := ParsePrefix(prefix)
	if err != nil {
		return "", err
	}
	return k.add(p, e)
}

// AddRoot trusts e for every image.
func (k *Keystore) AddRoot(e *openpgp.Entity) (string, error) {
	return k.add("", e)
}

func (k *Keystore) add(prefix string, e *openpgp.Entity) (string, error) {
	if k.LocalDir == "" {
		return "", fmt.Errorf("no local configuration directory to store keys in: %w", errdefs.ErrInvalid)
	}
	data, err := armorKey(e)
	if err != nil {
		return "", fmt.Errorf("serializing key %s: %w", Fingerprint(e), err)
	}
	dir := filepath.Join(k.LocalDir, relDir(prefix))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating trust directory: %w", err)
	}
	dst := filepath.Join(dir, Fingerprint(e))
	if err := atomicfile.Write(dst, data, 0o644); err != nil {
		return "", fmt.Errorf("storing key %s: %w", Fingerprint(e), err)
	}
	return dst, nil
}

// prefixesOf lists name and each of its parents, longest first:
// example.com/a/b, example.com/a, example.com.
func prefixesOf(name string) []string {
	var out []string
	for p := name; p != "." && p != "/" && p != ""; p = path.Dir(p) {
		out = append(out, p)
	}
	return out
}

// Keyring returns the keys trusted for images named name: those of every
// prefix of name and the root keys, from the local and system directories.
func (k *Keystore) Keyring(name types.ACIdentifier) ([]TrustedKey, error) {
	if _, err := ParsePrefix(name.String()); err != nil {
		return nil, fmt.Errorf("image name %q cannot be matched against trusted prefixes: %w", name, errdefs.ErrInvalid)
	}
	var keys []TrustedKey
	scopes := append(prefixesOf(name.String()), "")
	for _, prefix := range scopes {
		found, err := k.keysIn(prefix)
		if err != nil {
			return nil, err
		}
		keys = append(keys, found...)
	}
	return keys, nil
}

// keysIn loads the keys trusted for exactly prefix.
func (k *Keystore) keysIn(prefix string) ([]TrustedKey, error) {
	rel := relDir(prefix)
	local, err := listKeyFiles(k.LocalDir, rel, isFingerprint)
	if err != nil {
		return nil, err
	}
	system, err := listKeyFiles(k.SystemDir, rel, isFingerprint)
	if err != nil {
		return nil, err
	}
	var keys []TrustedKey
	load := func(base, fp string) {
		p := filepath.Join(base, rel, fp)
		e, err := loadKeyFile(p, fp)
		if err != nil {
			k.warn("ignoring trusted key file", "path", p, "err", err)
			return
		}
		keys = append(keys, TrustedKey{Entity: e, Fingerprint: fp, Prefix: prefix, Path: p})
	}
	for fp, size := range local {
		if size > 0 {
			load(k.LocalDir, fp)
		}
	}
	for fp := range system {
		if _, masked := local[fp]; masked {
			continue // overridden, or disabled by an empty file
		}
		load(k.SystemDir, fp)
	}
	return keys, nil
}

// listKeyFiles maps the files of base/rel whose names accept takes to
// their sizes. A missing directory holds no keys.
func listKeyFiles(base, rel string, accept func(string) bool) (map[string]int64, error) {
	out := map[string]int64{}
	if base == "" {
		return out, nil
	}
	entries, err := os.ReadDir(filepath.Join(base, rel))
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return out, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading trusted keys: %w", err)
	}
	for _, ent := range entries {
		if !accept(ent.Name()) {
			continue
		}
		info, err := os.Stat(filepath.Join(base, rel, ent.Name()))
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		out[ent.Name()] = info.Size()
	}
	return out, nil
}

// isFingerprint accepts the lowercase hex fingerprints of v4 (40) and v6
// (64) keys.
func isFingerprint(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// loadKeyFile reads a stored key, which must be the one key its name says.
func loadKeyFile(p, fp string) (*openpgp.Entity, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxKeySize+1))
	if err != nil {
		return nil, err
	}
	el, err := ReadKeys(data)
	if err != nil {
		return nil, err
	}
	if len(el) != 1 {
		return nil, fmt.Errorf("holds %d keys, want 1: %w", len(el), errdefs.ErrInvalid)
	}
	if got := Fingerprint(el[0]); got != fp {
		return nil, fmt.Errorf("holds key %s, not the key its name says: %w", got, errdefs.ErrInvalid)
	}
	return el[0], nil
}
