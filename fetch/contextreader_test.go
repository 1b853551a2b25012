package fetch

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestContextReaderStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	r := contextReader{ctx, strings.NewReader("some image bytes")}
	buf := make([]byte, 4)
	if n, err := r.Read(buf); n != 4 || err != nil {
		t.Fatalf("Read before cancel = %d, %v", n, err)
	}
	cancel()
	if _, err := io.ReadAll(r); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel = %v", err)
	}
}
