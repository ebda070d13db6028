package images

import (
	"slices"
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

// TestNoOrderingDeadlock: the agent's oneshot run starts the stack's units with
// "systemctl start", which waits forever for a unit ordered after that run.
func TestNoOrderingDeadlock(t *testing.T) {
	s, err := LoadStack()
	if err != nil {
		t.Fatal(err)
	}
	agent, err := FS.ReadFile("systemd/appliance-agent.service")
	if err != nil {
		t.Fatal(err)
	}
	var before []string
	for _, line := range strings.Split(string(agent), "\n") {
		if v, ok := strings.CutPrefix(line, "Before="); ok {
			before = append(before, strings.Fields(v)...)
		}
	}
	for _, u := range s.Units {
		if slices.Contains(before, u) {
			t.Errorf("appliance-agent.service is ordered before %s, which it starts", u)
		}
		if unit, err := FS.ReadFile("systemd/" + u); err == nil && strings.Contains(string(unit), "After=appliance-agent.service") {
			t.Errorf("%s is ordered after appliance-agent.service, which starts it", u)
		}
	}
}
