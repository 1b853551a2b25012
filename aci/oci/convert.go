package oci

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/orbit-containers/orbit/aci"
	"github.com/orbit-containers/orbit/internal/errdefs"
)

// MaxConfigSize bounds an image config.
const MaxConfigSize = 4 << 20

// WriteACI writes img, converted, to w as an uncompressed ACI: the
// manifest, then rootfs/ with the flattened layers. The output depends on
// the image alone, so converting the same image twice gives the same
// image ID. limit bounds the uncompressed size of the layers.
func WriteACI(ctx context.Context, img v1.Image, info Info, w io.Writer, limit int64) error {
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("image config: %w: %w", err, errdefs.ErrInvalid)
	}
	if cfg.OS != "" && cfg.OS != "linux" {
		return fmt.Errorf("image is for %s, not linux: %w", cfg.OS, errdefs.ErrInvalid)
	}
	raw, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("image config: %w", err)
	}
	if info.ConfigDigest == "" {
		info.ConfigDigest = fmt.Sprintf("sha256:%x", sha256.Sum256(raw))
	}
	// Each layer is checked against the config's diff ID as it is read:
	// the config's digest is in the manifest, so the content is pinned
	// whatever the source.
	diffIDs := cfg.RootFS.DiffIDs
	layers := make([]Layer, len(diffIDs))
	for i, d := range diffIDs {
		l, err := img.LayerByDiffID(d)
		if err != nil {
			return fmt.Errorf("layer %d (%s): %w", i+1, d, err)
		}
		layers[i] = CheckedLayer(l, d)
	}
	return Convert(ctx, cfg, layers, info, w, limit)
}

// Convert writes the ACI made from an image config and its layers (lowest
// first) to w.
func Convert(ctx context.Context, cfg *v1.ConfigFile, layers []Layer, info Info, w io.Writer, limit int64) error {
	p, err := planLayers(ctx, layers, limit)
	if err != nil {
		return err
	}
	m, err := Manifest(cfg, info, p.userDB)
	if err != nil {
		return err
	}
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("image manifest: %w: %w", err, errdefs.ErrInvalid)
	}
	// Fixed times: the ACI, and so its ID, is a function of the image.
	epoch := time.Unix(0, 0)
	if !cfg.Created.IsZero() {
		epoch = cfg.Created.Time
	}
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{Name: aci.ManifestName, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err := tw.Write(data); err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: aci.RootfsName + "/", Mode: 0o755, ModTime: epoch, Typeflag: tar.TypeDir, Format: tar.FormatPAX}); err != nil {
		return err
	}
	if err := writeRootfs(ctx, layers, p, tw, limit); err != nil {
		return err
	}
	return tw.Close()
}

// CheckedLayer returns l with its uncompressed stream checked against
// diffID once read to the end.
func CheckedLayer(l Layer, diffID v1.Hash) Layer { return verifiedLayer{l: l, diffID: diffID} }

// verifiedLayer is a layer whose uncompressed stream is checked against
// its diff ID once read to the end.
type verifiedLayer struct {
	l      Layer
	diffID v1.Hash
}

func (v verifiedLayer) Uncompressed() (io.ReadCloser, error) {
	rc, err := v.l.Uncompressed()
	if err != nil {
		return nil, err
	}
	if v.diffID.Algorithm != "sha256" {
		rc.Close()
		return nil, fmt.Errorf("layer %s: unsupported digest algorithm: %w", v.diffID, errdefs.ErrInvalid)
	}
	return &digestReader{rc: rc, h: sha256.New(), want: v.diffID.Hex}, nil
}

type digestReader struct {
	rc   io.ReadCloser
	h    hash.Hash
	want string
}

func (d *digestReader) Read(p []byte) (int, error) {
	n, err := d.rc.Read(p)
	d.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(d.h.Sum(nil)); got != d.want {
			return n, fmt.Errorf("layer content has digest sha256:%s, not sha256:%s as the image config says: %w", got, d.want, errdefs.ErrInvalid)
		}
	}
	return n, err
}

func (d *digestReader) Close() error { return d.rc.Close() }
