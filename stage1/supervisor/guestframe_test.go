package supervisor

import (
	"bytes"
	"strings"
	"testing"
)

func TestGuestFrames(t *testing.T) {
	var b bytes.Buffer
	if err := WriteGuestFrame(&b, GuestFrameStdout, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := WriteGuestFrame(&b, GuestFrameExit, []byte("3")); err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		typ byte
		p   string
	}{{GuestFrameStdout, "hello"}, {GuestFrameExit, "3"}} {
		typ, p, err := ReadGuestFrame(&b)
		if err != nil || typ != want.typ || string(p) != want.p {
			t.Fatalf("got %c %q %v, want %c %q", typ, p, err, want.typ, want.p)
		}
	}
	if err := WriteGuestFrame(&b, GuestFrameStdout, make([]byte, GuestMaxFrame+1)); err == nil {
		t.Error("an oversized frame was written")
	}
	// A frame announcing more than the bound is refused before it is read.
	huge := []byte{GuestFrameStdout, 0x7f, 0xff, 0xff, 0xff}
	if _, _, err := ReadGuestFrame(bytes.NewReader(huge)); err == nil || !strings.Contains(err.Error(), "invalid") {
		t.Errorf("an oversized frame was read: %v", err)
	}
}

func TestGuestTarget(t *testing.T) {
	for in, ok := range map[string]bool{"/vol": true, "/orbit-pod/volumes/x": true, "/": false, "../x": false, "/a/../b": false, "rel": false} {
		if _, err := guestTarget(in); (err == nil) != ok {
			t.Errorf("guestTarget(%q): %v", in, err)
		}
	}
}
