// Package store is orbit's image store: uncompressed ACIs kept as
// content-addressed blobs, a bbolt index of their names and labels, and the
// rendered trees (an image plus its dependencies) that pods are made from.
//
// Every orbit command is its own process, so nothing here is cached in
// memory between calls: the index is opened for each operation and closed
// again, trees are guarded by flock(2) on files under cas/locks, and every
// write is a temp file made durable and renamed into place. The layout is
// described in Documentation/design.md ("The data directory", "Images",
// "Rendered trees").
package store

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/appc/spec/schema"
	"github.com/appc/spec/schema/types"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

const (
	// idPrefix starts every image ID: the appc image ID is the SHA-512 of
	// the uncompressed ACI tar.
	idPrefix = "sha512-"
	// idHexLen is the length of the hex digest in a full image ID.
	idHexLen = 128
	// minPrefixHex is how many hex digits a shortened ID needs at least.
	minPrefixHex = 2
	// treePrefix starts every tree ID.
	treePrefix = "deps-sha512-"

	// dbTimeout bounds how long an operation waits for another orbit
	// process that has the index open for writing.
	dbTimeout = 2 * time.Minute
	// tmpMinAge is how long a temp file must have been left alone before GC
	// takes it for a leftover, on top of nobody holding its lock.
	tmpMinAge = time.Minute
)

// Store is the image store under one directory (<--dir>/cas). It holds no
// open files: a Store value is cheap and safe to share between goroutines.
type Store struct {
	dir       string
	dbTimeout time.Duration
	tmpMinAge time.Duration
	// leases, when set, is who holds the images this view returns (see
	// Leasing).
	leases *Leases
	// limits bound what Import and Tree write (see Limits).
	limits Limits
	// now is the store's clock (see WithClock).
	now func() time.Time
}

// Image is one stored image as the index records it.
type Image struct {
	ID     string
	Name   types.ACIdentifier
	Labels types.Labels
	// Size is the size of the stored, uncompressed ACI in bytes; for a
	// layered (OCI) image, with its layers' uncompressed size.
	Size       int64
	ImportedAt time.Time
	LastUsed   time.Time
	// Latest says the image was fetched as the newest version of its name
	// (no version asked for, or "latest").
	Latest bool
	// Signer says how the image was admitted: the fingerprint (lowercase
	// hex) of the key whose signature verified it, SignerBuiltin for an
	// image orbit made itself, or Unverified. See Verified.
	Signer string
	// Manifest is the image manifest; nil in ListBrief's images.
	Manifest *schema.ImageManifest
	// OCIName is an image converted from OCI's registry name and tag
	// (127.0.0.1:5000/demo/app:v1, or @digest without a tag), from the
	// appc.io/docker annotations its conversion set; "" for any other.
	OCIName string
}

// Unverified is the Signer of an image admitted without a signature check
// (--insecure-options=image), and of every image indexed before the store
// recorded signers: it is the zero value, so whatever does not say
// otherwise counts as unverified.
const Unverified = ""

// SignerBuiltin is the Signer of an image that orbit wrote itself (a
// built-in stage1 image), trusted as much as the orbit binary.
const SignerBuiltin = "builtin"

// Verified reports whether the image was admitted by a signature check,
// or made by orbit itself.
func (img Image) Verified() bool { return img.Signer != Unverified }

// ImportOptions tune Import.
type ImportOptions struct {
	// Latest marks the image as the newest version of its name, so that a
	// later lookup of name:latest finds it.
	Latest bool
	// Signer is how the image was admitted (see Image.Signer); the zero
	// value records it as Unverified. Importing an image that is stored
	// already with a Signer upgrades its record; importing it Unverified
	// keeps the signer it had, since its content is the same.
	Signer string
	// Layers make the image a layered (OCI) image: its rootfs is these
	// layers' trees (see LayerTree), lowest first, whose blobs must be
	// stored, and its ACI holds only its manifest. LayersSize, their
	// uncompressed size, is added to the image's Size.
	Layers     []LayerRef
	LayersSize int64
}

// checkSigner accepts Unverified, SignerBuiltin and a lowercase hex
// OpenPGP fingerprint (40 digits for v4 keys, 64 for v6).
func checkSigner(signer string) error {
	if signer == Unverified || signer == SignerBuiltin || isLowerHex(signer, 40) || isLowerHex(signer, 64) {
		return nil
	}
	return fmt.Errorf("image signer %q: want a lowercase hex key fingerprint or %q: %w", signer, SignerBuiltin, errdefs.ErrInvalid)
}

// InUseFunc reports whether a pod uses a rendered tree, so it must be kept.
type InUseFunc func(treeID string) (bool, error)

// Open returns the store in dir (normally <--dir>/cas), creating its
// directories and an empty index if they are missing. An index in an older
// format is migrated to the current one; one in a newer format than this
// orbit knows is refused (see formatVersion).
func Open(dir string) (*Store, error) {
	return open(dir, migrations())
}

// open is Open with the given migrations, the last of which brings the
// index to the newest format this binary knows.
func open(dir string, steps []migration) (*Store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("image store %s: %w", dir, err)
	}
	s := &Store{dir: abs, dbTimeout: dbTimeout, tmpMinAge: tmpMinAge, now: time.Now}
	// Rendered trees hold images' setuid binaries and device nodes as the
	// images have them: only root may reach into the store. Chmod too, for
	// stores made before this was so.
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("image store %s: %w", dir, err)
	}
	if err := os.Chmod(abs, 0o700); err != nil {
		return nil, fmt.Errorf("image store %s: %w", dir, err)
	}
	for _, d := range []string{s.blobsDir(), s.treesDir(), s.locksDir(), s.tmpDir(), s.leasesDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("image store %s: %w", dir, err)
		}
	}
	if err := s.initIndex(latestFormat(steps)); err != nil {
		return nil, fmt.Errorf("image store %s: %w", dir, err)
	}
	if err := s.upgradeIndex(steps); err != nil {
		return nil, err
	}
	return s, nil
}

// WithClock returns a view of the store that reads the time from now
// instead of time.Now: import and last-use times, and the ages that GC and
// ExpireImages compare with their grace periods.
func (s *Store) WithClock(now func() time.Time) *Store {
	c := *s
	c.now = now
	return &c
}

// Dir is the directory the store lives in.
func (s *Store) Dir() string { return s.dir }

func (s *Store) blobsDir() string { return filepath.Join(s.dir, "blobs", "sha512") }
func (s *Store) treesDir() string { return filepath.Join(s.dir, "trees") }
func (s *Store) locksDir() string { return filepath.Join(s.dir, "locks") }
func (s *Store) tmpDir() string   { return filepath.Join(s.dir, "tmp") }
func (s *Store) indexPath() string {
	return filepath.Join(s.dir, "index.db")
}

// blobPath is where the blob of a full, valid image ID lives.
func (s *Store) blobPath(id string) string {
	hexID := strings.TrimPrefix(id, idPrefix)
	return filepath.Join(s.blobsDir(), hexID[:2], hexID)
}

func (s *Store) treePath(treeID string) string { return filepath.Join(s.treesDir(), treeID) }
func (s *Store) treeLockPath(treeID string) string {
	return filepath.Join(s.locksDir(), treeID+".lock")
}

// ValidID reports whether id is a full image ID: "sha512-" and 128
// lowercase hex digits.
func ValidID(id string) bool {
	return strings.HasPrefix(id, idPrefix) && isLowerHex(id[len(idPrefix):], idHexLen)
}

// ShortID shortens a full image ID the way rkt and `orbit image list` show
// it: "sha512-" and the first 12 hex digits.
func ShortID(id string) string {
	if len(id) > len(idPrefix)+12 {
		return id[:len(idPrefix)+12]
	}
	return id
}

// LooksLikeID reports whether ref is meant as an image ID or a prefix of
// one rather than an image name: it starts with "sha512-".
func LooksLikeID(ref string) bool { return strings.HasPrefix(ref, idPrefix) }

func validTreeID(id string) bool {
	return strings.HasPrefix(id, treePrefix) && isLowerHex(id[len(treePrefix):], idHexLen)
}

// isLowerHex reports whether s is lowercase hex; n > 0 requires exactly n
// digits.
func isLowerHex(s string, n int) bool {
	if n > 0 && len(s) != n {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkID rejects anything but a full image ID, so that no caller can make
// a blob path out of hostile input.
func checkID(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("image ID %q: want %s and %d hex digits: %w", id, idPrefix, idHexLen, errdefs.ErrInvalid)
	}
	return nil
}

// idFromDigest makes an image ID from a SHA-512 sum.
func idFromDigest(sum []byte) string { return idPrefix + hex.EncodeToString(sum) }
