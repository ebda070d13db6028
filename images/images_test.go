package images

import (
	"strings"
	"testing"
)

func TestStackIsComplete(t *testing.T) {
	s, err := LoadStack()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Units) == 0 || len(s.Checks) == 0 || s.Deadline <= 0 {
		t.Fatalf("stack %+v", s)
	}
	// Units we ship must be in systemd/; the others come from Debian packages.
	for _, u := range s.Units {
		if strings.HasPrefix(u, "appliance") {
			if _, err := FS.ReadFile("systemd/" + u); err != nil {
				t.Errorf("stack starts %s, which images/systemd does not have", u)
			}
		}
	}
}
