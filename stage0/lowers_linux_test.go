package stage0

import (
	"strings"
	"testing"
)

func TestOverlayFits(t *testing.T) {
	lowers := func(n, length int) []string {
		l := make([]string, n)
		for i := range l {
			l[i] = "/" + strings.Repeat("l", length-1)
		}
		return l
	}
	for _, tc := range []struct {
		n, length int
		want      string // in the reason; "" fits
	}{
		{1, 100, ""},
		{40, 100, ""},
		{100, 200, ""}, // too long by path, fits by descriptor
		{300, 100, "more than a page"},
		{501, 10, "more than overlayfs stacks"},
	} {
		got := overlayFits(lowers(tc.n, tc.length), "/pod/upper", "/pod/work")
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%d lowers of %d bytes: %q, want %q", tc.n, tc.length, got, tc.want)
		}
	}
}

func TestMountOptionsNameLowersByDescriptorWhenLong(t *testing.T) {
	dir := t.TempDir()
	short, done, err := mountOptions([]string{dir, dir}, "/u", "/w")
	if err != nil {
		t.Fatal(err)
	}
	done()
	if !strings.Contains(short, "lowerdir="+dir+":"+dir+",") {
		t.Errorf("short lowers: %s", short)
	}
	many := make([]string, 200)
	for i := range many {
		many[i] = dir
	}
	long, done, err := mountOptions(many, "/u", "/w")
	if err != nil {
		t.Fatal(err)
	}
	defer done()
	if strings.Contains(long, dir+":") || !strings.HasPrefix(long, "lowerdir=/proc/self/fd/") {
		t.Errorf("long lowers not named by descriptor: %.120s", long)
	}
}
