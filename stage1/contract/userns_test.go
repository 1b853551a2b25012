package contract

import "testing"

func TestParseUserRange(t *testing.T) {
	r, err := ParseUserRange("524288:65536")
	if err != nil || r != (UserRange{Shift: 524288, Count: 65536}) || r.String() != "524288:65536" {
		t.Fatalf("ParseUserRange = %v, %v", r, err)
	}
	if !r.Contains(524288) || !r.Contains(589823) || r.Contains(589824) || r.Contains(0) {
		t.Error("Contains is wrong at the range's ends")
	}
	for _, bad := range []string{"", "1", "0:65536", "5:0", "x:1", "1:x", "4294967295:2", "-1:5"} {
		if _, err := ParseUserRange(bad); err == nil {
			t.Errorf("ParseUserRange(%q) accepted", bad)
		}
	}
	o := RunOptions{PrivateUsers: r.String()}
	got, _, err := ParseRun(o.Args(InterfaceVersion, "u"))
	if err != nil || got.PrivateUsers != "524288:65536" {
		t.Errorf("the flag does not survive Args and ParseRun: %v %v", got, err)
	}
}
