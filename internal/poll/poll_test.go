package poll

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/orbit-containers/orbit/internal/errdefs"
)

var errBusy = fmt.Errorf("held: %w", errdefs.ErrBusy)

func TestWhileBusyReturnsFirstOtherResult(t *testing.T) {
	other := errors.New("other")
	for _, want := range []error{nil, other} {
		calls := 0
		err := WhileBusy(t.Context(), func() error {
			if calls++; calls < 3 {
				return errBusy
			}
			return want
		})
		if err != want || calls != 3 {
			t.Fatalf("WhileBusy = %v after %d calls, want %v after 3", err, calls, want)
		}
	}
}

func TestWhileBusyEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(30*time.Millisecond, cancel)
	start := time.Now()
	err := WhileBusy(ctx, func() error { return errBusy })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("WhileBusy, cancelled = %v", err)
	}
	if d := time.Since(start); d > MaxDelay*2+time.Second {
		t.Fatalf("the cancelled wait took %s", d)
	}
	calls := 0
	if err := WhileBusy(ctx, func() error { calls++; return nil }); !errors.Is(err, context.Canceled) || calls != 0 {
		t.Fatalf("WhileBusy with a done context = %v after %d calls", err, calls)
	}
}

func TestSleep(t *testing.T) {
	if err := Sleep(t.Context(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := Sleep(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Sleep past the deadline = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Sleep outlived its context by %s", d)
	}
}
