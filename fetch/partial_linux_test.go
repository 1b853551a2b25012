package fetch

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/orbit-containers/orbit/store"
)

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

// resumeFixture serves body, answering range requests with status (0:
// as net/http does), and records the Range header of each request.
func resumeFixture(t *testing.T, body []byte, status int) (*Fetcher, *url.URL, *[]string) {
	t.Helper()
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ranges = append(ranges, r.Header.Get("Range"))
		if status != 0 && r.Header.Get("Range") != "" {
			w.WriteHeader(status)
			return
		}
		http.ServeContent(w, r, "x.aci", time.Time{}, bytes.NewReader(body))
	}))
	t.Cleanup(srv.Close)
	st, err := store.Open(filepath.Join(t.TempDir(), "cas"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := New(Config{Store: st, LocalConfig: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(srv.URL + "/x.aci")
	return f, u, &ranges
}

// seedPartial keeps n bytes of body as a cut download of u.
func seedPartial(t *testing.T, f *Fetcher, u *url.URL, body []byte, n int, age time.Duration) {
	t.Helper()
	p := f.openPartial(u)
	if p == nil {
		t.Fatal("no partial")
	}
	if err := p.start(http.Header{}, f.now()); err != nil {
		t.Fatal(err)
	}
	p.file.Write(body[:n])
	old := time.Now().Add(-age)
	os.Chtimes(p.file.Name(), old, old)
	p.release()
}

func TestResumeImage(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789"), 1000)
	for _, tc := range []struct {
		name      string
		status    int
		age       time.Duration
		wantRange string
		requests  int
	}{
		{"resumed", 0, 0, "bytes=400-", 1},
		{"416 starts over", http.StatusRequestedRangeNotSatisfiable, 0, "bytes=400-", 2},
		{"too old to resume", 0, store.PartialMaxAge + time.Hour, "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, u, ranges := resumeFixture(t, body, tc.status)
			seedPartial(t, f, u, body, 400, tc.age)
			dl, err := f.downloadImage(context.Background(), u, "")
			if err != nil {
				t.Fatal(err)
			}
			defer dl.Close()
			got, _ := io.ReadAll(dl.File)
			if !bytes.Equal(got, body) {
				t.Errorf("got %d bytes, not the image", len(got))
			}
			if len(*ranges) != tc.requests || (*ranges)[0] != tc.wantRange {
				t.Errorf("ranges asked: %q", *ranges)
			}
			if dl.Resumed != (tc.status == 0 && tc.age == 0) {
				t.Errorf("Resumed = %v", dl.Resumed)
			}
		})
	}
}

func TestOpenPartialFileReplacesLinks(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, link := range []func(string, string) error{os.Symlink, os.Link} {
		p := filepath.Join(dir, "partial.aci")
		if err := link(victim, p); err != nil {
			t.Fatal(err)
		}
		f, err := openPartialFile(p)
		if err != nil {
			t.Fatal(err)
		}
		f.Truncate(0)
		f.WriteString("download")
		f.Close()
		if got, _ := os.ReadFile(victim); string(got) != "precious" {
			t.Errorf("the linked file was written: %q", got)
		}
		os.Remove(p)
	}
	sub := filepath.Join(dir, "partial")
	if err := os.Mkdir(sub, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(sub, 0o777)
	if err := ensurePrivateDir(sub); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(sub); fi.Mode().Perm() != 0o700 {
		t.Errorf("mode %v", fi.Mode())
	}
	os.Symlink(dir, filepath.Join(dir, "linked"))
	if err := ensurePrivateDir(filepath.Join(dir, "linked")); err == nil {
		t.Error("a link to a directory was taken as the partial directory")
	}
}
