package store

import (
	"context"
	"testing"
	"time"
)

func TestLockName(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", ".", "..", "a/b", treePrefix + "00"} {
		if _, err := s.Lock(context.Background(), bad); err == nil {
			t.Errorf("Lock(%q) accepted", bad)
		}
	}
	unlock, err := s.Lock(context.Background(), "stage1-fly")
	if err != nil {
		t.Fatal(err)
	}
	// A second taker waits until the first lets go.
	taken := make(chan func() error)
	go func() {
		u, err := s.Lock(context.Background(), "stage1-fly")
		if err != nil {
			t.Error(err)
		}
		taken <- u
	}()
	select {
	case <-taken:
		t.Fatal("the lock was taken twice")
	case <-time.After(100 * time.Millisecond):
	}
	if err := unlock(); err != nil {
		t.Fatal(err)
	}
	select {
	case u := <-taken:
		if u != nil {
			u()
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the lock was not handed over")
	}
}
