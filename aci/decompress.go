package aci

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/ulikunitz/xz"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

var (
	gzipMagic  = []byte{0x1f, 0x8b}
	bzip2Magic = []byte("BZh")
	xzMagic    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	tarMagic   = []byte("ustar") // at offset 257, POSIX and GNU tar
)

const tarMagicOffset = 257

// Decompress returns the uncompressed tar stream of an ACI that is a plain
// tar or a gzip, bzip2 or xz compressed one, recognised by its first bytes.
// Anything else is ErrInvalid. Closing the result does not close r.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	src := &sourceReader{r: r}
	br := bufio.NewReaderSize(src, 64<<10)
	head, err := br.Peek(tarMagicOffset + len(tarMagic))
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("reading image: %w", err)
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("reading gzip image: %w: %w", err, errdefs.ErrInvalid)
		}
		return &decompressor{src: src, r: zr, close: zr.Close}, nil
	case bytes.HasPrefix(head, xzMagic):
		zr, err := xz.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("reading xz image: %w: %w", err, errdefs.ErrInvalid)
		}
		return &decompressor{src: src, r: zr}, nil
	case bytes.HasPrefix(head, bzip2Magic):
		return &decompressor{src: src, r: bzip2.NewReader(br)}, nil
	case len(head) >= tarMagicOffset+len(tarMagic) && bytes.Equal(head[tarMagicOffset:], tarMagic):
		return io.NopCloser(br), nil
	}
	return nil, fmt.Errorf("image is not a tar, nor a gzip, bzip2 or xz compressed tar: %w", errdefs.ErrInvalid)
}

// sourceReader remembers the last error of the compressed input, so that a
// decompressor's own errors (corrupt data) can be told apart from I/O errors.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// decompressor marks errors that the decompressor itself raised as
// ErrInvalid: the input is not well-formed compressed data.
type decompressor struct {
	src   *sourceReader
	r     io.Reader
	close func() error
}

func (d *decompressor) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err != nil && err != io.EOF && (d.src.err == nil || !errors.Is(err, d.src.err)) {
		err = fmt.Errorf("decompressing image: %w: %w", err, errdefs.ErrInvalid)
	}
	return n, err
}

func (d *decompressor) Close() error {
	if d.close != nil {
		return d.close()
	}
	return nil
}
