package aci

import (
	"hash"
)

// AsyncHash is an io.Writer that hashes what is written to it on a
// goroutine of its own, so that hashing a stream overlaps with what the
// writer's caller does with it (parsing a tar and writing its files):
// SHA-512 of a large image costs about as much as extracting it, and the
// two then run on two cores instead of one after the other. Writes are
// batched into large buffers; Sum waits for the hasher to finish.
type AsyncHash struct {
	h    hash.Hash
	buf  []byte
	work chan []byte
	free chan []byte
	done chan struct{}
}

const (
	asyncHashBuf   = 1 << 20
	asyncHashDepth = 4
)

// NewAsyncHash returns an AsyncHash feeding h. Call Sum, or Stop when the
// stream is abandoned, or its goroutine lives on.
func NewAsyncHash(h hash.Hash) *AsyncHash {
	a := &AsyncHash{
		h:    h,
		work: make(chan []byte, asyncHashDepth),
		free: make(chan []byte, asyncHashDepth+1),
		done: make(chan struct{}),
	}
	for i := 0; i < asyncHashDepth+1; i++ {
		a.free <- make([]byte, 0, asyncHashBuf)
	}
	a.buf = <-a.free
	go func() {
		defer close(a.done)
		for b := range a.work {
			a.h.Write(b)
			a.free <- b[:0]
		}
	}()
	return a
}

func (a *AsyncHash) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		c := copy(a.buf[len(a.buf):cap(a.buf)], p)
		a.buf, p = a.buf[:len(a.buf)+c], p[c:]
		if len(a.buf) == cap(a.buf) {
			a.work <- a.buf
			a.buf = <-a.free
		}
	}
	return n, nil
}

// Sum hands over what is buffered, waits for the hasher and returns the
// hash, whose Sum the caller reads. The AsyncHash takes no writes after.
func (a *AsyncHash) Sum() hash.Hash {
	if a.buf != nil {
		if len(a.buf) > 0 {
			a.work <- a.buf
		}
		a.buf = nil
		close(a.work)
	}
	<-a.done
	return a.h
}

// Stop ends the hasher, whether or not Sum was called.
func (a *AsyncHash) Stop() {
	if a.buf != nil {
		a.buf = nil
		close(a.work)
	}
}
