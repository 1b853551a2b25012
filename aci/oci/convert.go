package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

// MaxConfigSize bounds an image config.
const MaxConfigSize = 4 << 20

// Layer is one filesystem layer, opened as an uncompressed tar stream.
type Layer interface {
	Uncompressed() (io.ReadCloser, error)
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
