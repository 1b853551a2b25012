package oci

import "testing"

func TestResolveUser(t *testing.T) {
	db := map[string][]byte{
		"etc/passwd": []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n"),
		"etc/group":  []byte("root:x:0:\napps:x:1001:\nstaff:x:50:\n"),
	}
	for spec, want := range map[string]string{
		"": "0:0", "app": "1000:1001", "1000": "1000:1001", "1000:50": "1000:50",
		"app:staff": "1000:50", "42": "42:0", "ghost": "ghost:0",
	} {
		u, g := resolveUser(spec, db)
		if u+":"+g != want {
			t.Errorf("%q: got %s:%s, want %s", spec, u, g, want)
		}
	}
}
