// Package aci reads, validates, extracts, writes and renders App Container
// Images (ACIs): tar archives holding a "manifest" file and a "rootfs"
// directory.
//
// Every tar stream is treated as hostile. Check validates one without
// touching the filesystem; Extract writes one below a directory resolving
// every path inside it, so it is safe even on input Check never saw.
package aci

import (
	"encoding/hex"
	"fmt"
	"hash"
	"strings"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

const (
	// ManifestName and RootfsName are the two top-level entries of an ACI.
	ManifestName = "manifest"
	RootfsName   = "rootfs"

	// MaxManifestSize bounds the manifest entry: real manifests are a few
	// KiB, and the whole manifest is held in memory.
	MaxManifestSize = 4 << 20

	idPrefix = "sha512-"
	idHexLen = 128
)

// ImageID returns the appc image ID of the data written to h, a SHA-512
// hash of an uncompressed ACI tar: "sha512-" and the hash in lowercase hex.
func ImageID(h hash.Hash) string {
	return idPrefix + hex.EncodeToString(h.Sum(nil))
}

// ValidID reports whether s is a full image ID: "sha512-" and 128 lowercase
// hex digits.
func ValidID(s string) bool {
	hexPart, ok := strings.CutPrefix(s, idPrefix)
	if !ok || len(hexPart) != idHexLen {
		return false
	}
	for i := 0; i < len(hexPart); i++ {
		c := hexPart[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Compression is how Write compresses the tar it produces.
type Compression int

const (
	// CompressionNone writes a plain tar.
	CompressionNone Compression = iota
	// CompressionGzip writes a gzip-compressed tar.
	CompressionGzip
)

// String returns the name used on the command line.
func (c Compression) String() string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionGzip:
		return "gzip"
	}
	return fmt.Sprintf("Compression(%d)", int(c))
}

// ParseCompression turns a command-line name into a Compression.
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "none":
		return CompressionNone, nil
	case "gzip":
		return CompressionGzip, nil
	}
	return 0, fmt.Errorf("compression %q: want gzip or none: %w", s, errdefs.ErrInvalid)
}

// entryError reports a refused tar entry. Every refusal is ErrInvalid.
func entryError(name, format string, args ...any) error {
	return fmt.Errorf("tar entry %q: %s: %w", name, fmt.Sprintf(format, args...), errdefs.ErrInvalid)
}
