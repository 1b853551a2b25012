package fetch

import "testing"

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in                 string
		first, last, total int64
		ok                 bool
	}{
		{"bytes 10-99/100", 10, 99, 100, true},
		{"bytes 0-0/*", 0, 0, -1, true},
		{"bytes 10-99/50", 0, 0, 0, false},
		{"bytes 20-10/100", 0, 0, 0, false},
		{"bytes */100", 0, 0, 0, false},
		{"items 0-1/2", 0, 0, 0, false},
		{"bytes -5-10/100", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	} {
		first, last, total, ok := parseContentRange(tc.in)
		if ok != tc.ok || (ok && (first != tc.first || last != tc.last || total != tc.total)) {
			t.Errorf("%q: got %d %d %d %v", tc.in, first, last, total, ok)
		}
	}
}

func TestPartialValidator(t *testing.T) {
	for _, tc := range []struct {
		m    partialMeta
		want string
	}{
		{partialMeta{ETag: `"a"`, LastModified: "Mon, 02 Jan 2006 15:04:05 GMT"}, `"a"`},
		{partialMeta{ETag: `W/"a"`, LastModified: "Mon, 02 Jan 2006 15:04:05 GMT"}, "Mon, 02 Jan 2006 15:04:05 GMT"},
		{partialMeta{ETag: `W/"a"`}, ""},
		{partialMeta{}, ""},
	} {
		if got := tc.m.validator(); got != tc.want {
			t.Errorf("%+v: got %q, want %q", tc.m, got, tc.want)
		}
	}
}
