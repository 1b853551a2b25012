package aci

import (
	"bytes"
	"io"
	"os"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/ulikunitz/xz"
)

func decompressAll(t *testing.T, data []byte) ([]byte, error) {
	t.Helper()
	rc, err := Decompress(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func TestDecompress(t *testing.T) {
	plain := simpleImage(t)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(plain)
	zw.Close()
	var xzb bytes.Buffer
	xw, err := xz.NewWriter(&xzb)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write(plain)
	xw.Close()

	for name, data := range map[string][]byte{"none": plain, "gzip": gz.Bytes(), "xz": xzb.Bytes()} {
		t.Run(name, func(t *testing.T) {
			got, err := decompressAll(t, data)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, plain) {
				t.Fatalf("decompressed %d bytes, want the %d of the tar", len(got), len(plain))
			}
		})
	}
	t.Run("bzip2", func(t *testing.T) {
		data, err := os.ReadFile("testdata/image.tar.bz2")
		if err != nil {
			t.Fatal(err)
		}
		rc, err := Decompress(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		im, err := Check(rc)
		if err != nil {
			t.Fatal(err)
		}
		if im.Name != "example.com/bzip2" {
			t.Errorf("name %q", im.Name)
		}
	})
}

func TestDecompressRefusesUnknownFormats(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":  nil,
		"text":   []byte("#!/bin/sh\necho not an image\n"),
		"zip":    append([]byte("PK\x03\x04"), make([]byte, 600)...),
		"zeroes": make([]byte, 4096),
		"short":  {0x1f},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := decompressAll(t, data)
			wantInvalid(t, err, "not a tar")
		})
	}
}

func TestDecompressCorruptData(t *testing.T) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(simpleImage(t))
	zw.Close()
	data := gz.Bytes()
	for _, cut := range []struct {
		name string
		data []byte
	}{
		{"truncated", data[:len(data)/2]},
		{"flipped", flip(data, len(data)/2)},
		{"bad header", flip(data, 3)},
	} {
		t.Run(cut.name, func(t *testing.T) {
			rc, err := Decompress(bytes.NewReader(cut.data))
			if err == nil {
				_, err = Check(rc)
			}
			wantInvalid(t, err)
		})
	}
}

func flip(data []byte, i int) []byte {
	out := bytes.Clone(data)
	out[i] ^= 0xff
	return out
}
