package aci

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"testing"
)

func TestAsyncHashMatchesTheHash(t *testing.T) {
	data := make([]byte, 5*asyncHashBuf+12345)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	want := sha512.Sum512(data)
	for _, chunk := range []int{1, 511, 32 << 10, asyncHashBuf, 3 * asyncHashBuf} {
		a := NewAsyncHash(sha512.New())
		for p := data; len(p) > 0; {
			n := min(chunk, len(p))
			if w, err := a.Write(p[:n]); w != n || err != nil {
				t.Fatalf("Write = %d, %v", w, err)
			}
			p = p[n:]
		}
		if got := a.Sum().Sum(nil); !bytes.Equal(got, want[:]) {
			t.Fatalf("chunks of %d: hash differs", chunk)
		}
		a.Stop() // after Sum: a no-op
	}
	// Abandoned half-way: Stop ends the goroutine without a Sum.
	a := NewAsyncHash(sha512.New())
	a.Write(data[:asyncHashBuf+1])
	a.Stop()
	<-a.done
}
