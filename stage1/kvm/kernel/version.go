package kernel

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// UnknownVersion is a Kernel's Version when its image does not say.
const UnknownVersion = "unknown"

// ImageVersion reads a kernel image's release: from the setup header of a
// bzImage, or from the "Linux version " banner of an uncompressed vmlinux.
func ImageVersion(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var hdr [0x210]byte
	if _, err := io.ReadFull(f, hdr[:]); err == nil && string(hdr[0x202:0x206]) == "HdrS" {
		// The boot protocol's kernel_version: an offset, from 0x200, of a
		// NUL-terminated string that starts with the release.
		off := int64(binary.LittleEndian.Uint16(hdr[0x20e:])) + 0x200
		var s [256]byte
		n, _ := f.ReadAt(s[:], off)
		if release, _, _ := bytes.Cut(s[:n], []byte{' '}); len(release) > 0 && n > 0 {
			release, _, _ = bytes.Cut(release, []byte{0})
			return string(release), nil
		}
		return UnknownVersion, nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	return bannerVersion(f)
}

// bannerVersion finds "Linux version <release> " in an uncompressed image.
func bannerVersion(r io.Reader) (string, error) {
	const banner = "Linux version "
	br := bufio.NewReaderSize(r, 1<<20)
	var window []byte
	for {
		chunk := make([]byte, 1<<20)
		n, err := br.Read(chunk)
		window = append(window, chunk[:n]...)
		if i := bytes.Index(window, []byte(banner)); i >= 0 {
			rest := window[i+len(banner):]
			if j := bytes.IndexAny(rest, " \x00"); j > 0 {
				return string(rest[:j]), nil
			}
			if len(rest) > 256 {
				return UnknownVersion, nil
			}
		} else if len(window) > len(banner) {
			window = window[len(window)-len(banner):]
		}
		if err == io.EOF {
			return UnknownVersion, nil
		} else if err != nil {
			return "", fmt.Errorf("reading kernel image: %w", err)
		}
	}
}
