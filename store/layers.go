package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/orbit-containers/orbit/internal/atomicfile"
	"github.com/orbit-containers/orbit/internal/errdefs"
)

// OCI layers are kept as the registry served them (compressed), named by
// their digest, in cas/layers/sha256/<hex>: a layer two images share is
// downloaded once. They are written like image blobs (temp file, digest
// checked, fsync, read-only, rename, fsync of the directory) and removed
// once no stored image lists them and no command holds them (see
// layertrees.go).

func (s *Store) layersDir() string { return filepath.Join(s.dir, "layers", "sha256") }

// layerHex checks an OCI digest ("sha256:<64 hex>") and returns its hex.
func layerHex(digest string) (string, error) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(h) != 64 {
		return "", fmt.Errorf("layer digest %q: want sha256:<64 hex digits>: %w", digest, errdefs.ErrInvalid)
	}
	if _, err := hex.DecodeString(h); err != nil || strings.ToLower(h) != h {
		return "", fmt.Errorf("layer digest %q: want sha256:<64 hex digits>: %w", digest, errdefs.ErrInvalid)
	}
	return h, nil
}

// Layer returns the path of a stored layer blob, or errdefs.ErrNotFound.
func (s *Store) Layer(digest string) (string, error) {
	h, err := layerHex(digest)
	if err != nil {
		return "", err
	}
	p := filepath.Join(s.layersDir(), h)
	if fi, err := os.Lstat(p); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("layer %s: %w", digest, errdefs.ErrNotFound)
	}
	return p, nil
}

// PutLayer stores a layer blob read from r, which must have the given
// digest and be at most limit bytes, and returns its path. Nothing is left
// behind when it fails.
func (s *Store) PutLayer(digest string, r io.Reader, limit int64) (string, error) {
	h, err := layerHex(digest)
	if err != nil {
		return "", err
	}
	tmp, err := s.lockedTemp("layer-*")
	if err != nil {
		return "", fmt.Errorf("storing layer %s: %w", digest, err)
	}
	renamed := false
	defer func() {
		if !renamed {
			os.Remove(tmp.Name())
		}
		tmp.Close()
	}()
	sum := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, sum), io.LimitReader(r, limit+1))
	if err != nil {
		return "", fmt.Errorf("layer %s: %w", digest, err)
	}
	if n > limit {
		return "", fmt.Errorf("layer %s is larger than the limit of %s: %w", digest, FormatSize(limit), errdefs.ErrInvalid)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != h {
		return "", fmt.Errorf("layer content has digest sha256:%s, not %s: %w", got, digest, errdefs.ErrInvalid)
	}
	if err := tmp.Sync(); err != nil {
		return "", err
	}
	if err := tmp.Chmod(0o444); err != nil {
		return "", err
	}
	dst := filepath.Join(s.layersDir(), h)
	// Renamed under the index's write lock, as image blobs are, so gc
	// never sees a layer between its rename and its image's index entry
	// as an orphan for longer than the fetch holds its lease.
	err = s.update(func(*bolt.Tx) error {
		if err := os.MkdirAll(s.layersDir(), 0o755); err != nil {
			return err
		}
		if err := os.Rename(tmp.Name(), dst); err != nil {
			return err
		}
		renamed = true
		return atomicfile.SyncDir(s.layersDir())
	}, nil)
	if err != nil {
		return "", fmt.Errorf("storing layer %s: %w", digest, err)
	}
	return dst, nil
}

// legacyLayers lists the layer blobs an image converted by an older
// orbit (flattened into its ACI) names in its orbit.dev/oci/layers
// annotation: kept as long as the image is, as before.
func legacyLayers(rec record) []string {
	var m struct {
		Annotations []struct{ Name, Value string }
	}
	if len(rec.Layers) > 0 || len(rec.Manifest) == 0 || json.Unmarshal(rec.Manifest, &m) != nil {
		return nil
	}
	for _, a := range m.Annotations {
		if a.Name == "orbit.dev/oci/layers" {
			return strings.Fields(a.Value)
		}
	}
	return nil
}
