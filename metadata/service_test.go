package metadata

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/appc/spec/schema/types"
)

const (
	uuidA = "6733c4b0-4e09-4b3e-9d45-6f6a2f1a2b3c"
	uuidB = "11111111-2222-4333-8444-555555555555"
	imgID = "sha512-" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

func registration(uuid string, podAnnotations string) *Registration {
	pm := `{"acKind":"PodManifest","acVersion":"0.8.11","apps":[{"name":"web","image":{"id":"` + imgID + `"},"annotations":[{"name":"lorem","value":"pod"},{"name":"extra","value":"x"}]}],"annotations":` + podAnnotations + `}`
	im := `{"acKind":"ImageManifest","acVersion":"0.8.11","name":"example.com/web","annotations":[{"name":"lorem","value":"image"},{"name":"only-image","value":"i"}]}`
	return &Registration{UUID: uuid, PodManifest: json.RawMessage(pm), Images: map[string]json.RawMessage{"web": json.RawMessage(im)}}
}

type tester struct {
	t   *testing.T
	srv *httptest.Server
}

func (ts tester) get(token, path string) (int, string, string) {
	ts.t.Helper()
	resp, err := http.Get(ts.srv.URL + "/" + token + "/acMetadata/v1" + path)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

func (ts tester) post(token, path string, form url.Values) (int, string, string) {
	ts.t.Helper()
	resp, err := http.PostForm(ts.srv.URL+"/"+token+"/acMetadata/v1"+path, form)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(body)
}

func newTester(t *testing.T) (*Service, tester) {
	s, err := New(18112, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.AppHandler())
	t.Cleanup(srv.Close)
	return s, tester{t, srv}
}

func TestEndpoints(t *testing.T) {
	s, ts := newTester(t)
	reg, err := s.Register(registration(uuidA, `[{"name":"ip","value":"10.1.2.3"}]`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(reg.Token) < 43 || reg.Port != 18112 {
		t.Fatalf("registered = %+v", reg)
	}
	tok := reg.Token
	for _, c := range []struct {
		path, ctype, body string
	}{
		{"/pod/uuid", contentASCII, uuidA},
		{"/pod/annotations", contentJSON, `[{"name":"ip","value":"10.1.2.3"}]`},
		{"/pod/annotations/ip", contentUTF8, "10.1.2.3"},
		{"/apps/web/annotations", contentJSON, `[{"name":"lorem","value":"pod"},{"name":"only-image","value":"i"},{"name":"extra","value":"x"}]`},
		{"/apps/web/annotations/lorem", contentUTF8, "pod"},
		{"/apps/web/image/id", contentASCII, imgID},
	} {
		code, ctype, body := ts.get(tok, c.path)
		if code != 200 || ctype != c.ctype || body != c.body {
			t.Errorf("GET %s = %d %q %q; want 200 %q %q", c.path, code, ctype, body, c.ctype, c.body)
		}
	}
	code, ctype, body := ts.get(tok, "/apps/web/image/manifest")
	if code != 200 || ctype != contentJSON || !strings.Contains(body, `"example.com/web"`) {
		t.Errorf("image manifest = %d %q %s", code, ctype, body)
	}
	code, _, body = ts.get(tok, "/pod/manifest")
	var pm map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &pm) != nil || pm["acKind"] != "PodManifest" {
		t.Errorf("pod manifest = %d %s", code, body)
	}
	for _, path := range []string{"/pod/annotations/nope", "/apps/nope/annotations", "/apps/web/annotations/nope", "/apps/NOT..valid/image/id", "/nothing"} {
		if code, _, _ := ts.get(tok, path); code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, code)
		}
	}
}

// A pod without annotations is served an empty list, the same as in its
// manifest, as the ACE validator compares them.
func TestEmptyPodAnnotations(t *testing.T) {
	s, ts := newTester(t)
	reg, err := s.Register(registration(uuidA, `null`), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _, list := ts.get(reg.Token, "/pod/annotations")
	_, _, manifest := ts.get(reg.Token, "/pod/manifest")
	var pm struct {
		Annotations types.Annotations `json:"annotations"`
	}
	json.Unmarshal([]byte(manifest), &pm)
	if list != "[]" || pm.Annotations == nil {
		t.Errorf("annotations %s, manifest's %#v", list, pm.Annotations)
	}
}

func TestSignVerify(t *testing.T) {
	s, ts := newTester(t)
	a, _ := s.Register(registration(uuidA, `[]`), nil)
	b, _ := s.Register(registration(uuidB, `[]`), nil)
	code, ctype, sig := ts.post(a.Token, "/pod/hmac/sign", url.Values{"content": {"hello"}})
	if code != 200 || ctype != contentASCII {
		t.Fatalf("sign = %d %q %q", code, ctype, sig)
	}
	if raw, err := base64.StdEncoding.DecodeString(sig); err != nil || len(raw) != 64 {
		t.Errorf("signature %q is not a base64 HMAC-SHA512", sig)
	}
	verify := func(token, uuid, content, sig string) int {
		code, ctype, _ := ts.post(token, "/pod/hmac/verify", url.Values{"content": {content}, "uuid": {uuid}, "signature": {sig}})
		if code == 200 && ctype != contentASCII {
			t.Errorf("verify content type %q", ctype)
		}
		return code
	}
	// Any pod may verify A's signature.
	for _, tok := range []string{a.Token, b.Token} {
		if code := verify(tok, uuidA, "hello", sig); code != 200 {
			t.Errorf("verify A's signature = %d, want 200", code)
		}
	}
	// Not as B's, nor of other content, nor forged.
	_, _, sigB := ts.post(b.Token, "/pod/hmac/sign", url.Values{"content": {"hello"}})
	if sigB == sig {
		t.Error("two pods sign the same content alike")
	}
	for _, c := range []struct{ uuid, content, sig string }{
		{uuidB, "hello", sig},
		{uuidA, "hellO", sig},
		{uuidA, "hello", base64.StdEncoding.EncodeToString(make([]byte, 64))},
		{uuidA, "hello", "not base64!"},
	} {
		if code := verify(b.Token, c.uuid, c.content, c.sig); code != http.StatusForbidden {
			t.Errorf("verify %+v = %d, want 403", c, code)
		}
	}
	if code := verify(b.Token, "not-a-uuid", "hello", sig); code != http.StatusBadRequest {
		t.Errorf("verify with a bad uuid = %d, want 400", code)
	}
	// A signature outlives the pod's registration.
	s.Unregister(uuidA)
	if code := verify(b.Token, uuidA, "hello", sig); code != 200 {
		t.Errorf("verify after A left = %d, want 200", code)
	}
	// Too much to sign.
	if code, _, _ := ts.post(b.Token, "/pod/hmac/sign", url.Values{"content": {strings.Repeat("x", MaxSignContent+1)}}); code != http.StatusRequestEntityTooLarge {
		t.Errorf("sign of too much = %d, want 413", code)
	}
	resp, err := http.Post(ts.srv.URL+"/"+b.Token+"/acMetadata/v1/pod/hmac/sign", "text/plain", strings.NewReader("content=x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("sign of a non-form = %d, want 415", resp.StatusCode)
	}
}

func TestTokens(t *testing.T) {
	s, ts := newTester(t)
	a, _ := s.Register(registration(uuidA, `[]`), nil)
	for _, tok := range []string{"", "x", a.Token + "x", strings.ToUpper(a.Token), uuidA} {
		if code, _, _ := ts.get(tok, "/pod/uuid"); code == 200 {
			t.Errorf("token %q accepted", tok)
		}
	}
	// Registering the pod again replaces its token and ends the old
	// registration.
	stopped := false
	s2, _ := s.Register(registration(uuidB, `[]`), func() { stopped = true })
	a2, _ := s.Register(registration(uuidA, `[]`), nil)
	if code, _, _ := ts.get(a.Token, "/pod/uuid"); code != http.StatusUnauthorized {
		t.Errorf("old token after re-registration = %d, want 401", code)
	}
	if code, _, body := ts.get(a2.Token, "/pod/uuid"); code != 200 || body != uuidA {
		t.Errorf("new token = %d %s", code, body)
	}
	if !s.Unregister(uuidB) || !stopped || s.Unregister(uuidB) {
		t.Error("Unregister did not end B's registration once")
	}
	if code, _, _ := ts.get(s2.Token, "/pod/uuid"); code != http.StatusUnauthorized {
		t.Errorf("token after unregistration = %d, want 401", code)
	}
	if s.Pods() != 1 {
		t.Errorf("Pods = %d, want 1", s.Pods())
	}
}

func TestBadRegistrations(t *testing.T) {
	s, _ := newTester(t)
	good := registration(uuidA, `[]`)
	for name, r := range map[string]*Registration{
		"bad uuid":      {UUID: "x", PodManifest: good.PodManifest, Images: good.Images},
		"bad manifest":  {UUID: uuidA, PodManifest: json.RawMessage(`{"acKind":"ImageManifest"}`), Images: good.Images},
		"missing image": {UUID: uuidA, PodManifest: good.PodManifest},
		"extra image":   {UUID: uuidA, PodManifest: good.PodManifest, Images: map[string]json.RawMessage{"web": good.Images["web"], "other": good.Images["web"]}},
		"bad image":     {UUID: uuidA, PodManifest: good.PodManifest, Images: map[string]json.RawMessage{"web": json.RawMessage(`{}`)}},
	} {
		if _, err := s.Register(r, nil); err == nil {
			t.Errorf("%s: registered", name)
		}
	}
	if s.Pods() != 0 {
		t.Errorf("Pods = %d", s.Pods())
	}
}

// The apps' server bounds what a pod can hold: a connection that sends no
// request is closed after the header timeout, and at most n are open.
func TestLimitListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ll := LimitListener(l, 1)
	defer ll.Close()
	go func() {
		for {
			c, err := ll.Accept()
			if err != nil {
				return
			}
			go func() { time.Sleep(200 * time.Millisecond); c.Close() }()
		}
	}()
	c1, _ := net.Dial("tcp", l.Addr().String())
	c2, _ := net.Dial("tcp", l.Addr().String())
	defer c1.Close()
	defer c2.Close()
	// c2 waits in the backlog until c1 is closed by the server.
	start := time.Now()
	c2.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1)
	c2.Read(buf) // returns when the server closes c2
	if d := time.Since(start); d < 350*time.Millisecond {
		t.Errorf("second connection served after %v, before the first was released", d)
	}
	srv := (&Service{}).AppServer()
	if srv.ReadHeaderTimeout == 0 || srv.ReadTimeout == 0 || srv.WriteTimeout == 0 || srv.IdleTimeout == 0 || srv.MaxHeaderBytes == 0 {
		t.Errorf("the apps' server has no bound: %+v", srv)
	}
}
