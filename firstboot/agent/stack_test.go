package agent

import (
	"slices"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/update"
	"github.com/ethikkom/ecs-appliance/images"
)

// fullEnv uses every optional service (opendkim needs a DKIM key).
var fullEnv = &env.Env{Appliance: env.Appliance{DKIM: env.DKIM{Key: "key"}}}

// TestStackUnitsAgreeWithTheImage: the agent starts the stack, so no unit of it may
// start on its own at boot (the recipe disables what packages enable), units we ship
// must be in images/systemd, and none may be ordered around the agent's own run.
func TestStackUnitsAgreeWithTheImage(t *testing.T) {
	r, err := images.LoadRecipe()
	if err != nil {
		t.Fatal(err)
	}
	agentUnit, err := images.FS.ReadFile("systemd/appliance-agent.service")
	if err != nil {
		t.Fatal(err)
	}
	var before []string
	for _, line := range strings.Split(string(agentUnit), "\n") {
		if v, ok := strings.CutPrefix(line, "Before="); ok {
			before = append(before, strings.Fields(v)...)
		}
	}
	units := services.Units(fullEnv, Stack)
	if len(units) == 0 {
		t.Fatal("the stack has no units")
	}
	for _, u := range units {
		ours, err := images.FS.ReadFile("systemd/" + u)
		switch {
		case u == update.Timer:
			// Written at boot from appliance.update.oncalendar; its service is static.
			ours, err = images.FS.ReadFile("systemd/appliance-update.service")
			if err != nil {
				t.Errorf("images/systemd has no appliance-update.service for %s", u)
			}
		case strings.HasPrefix(u, "appliance") && err != nil:
			t.Errorf("the stack starts %s, which images/systemd does not have", u)
		case !strings.HasPrefix(u, "appliance") && !strings.Contains(u, "@") && !slices.Contains(r.Disable, u):
			t.Errorf("stack unit %s is not in the recipe's disable list", u)
		}
		// "systemctl start" from the agent's oneshot run would wait for these forever.
		if slices.Contains(before, u) {
			t.Errorf("appliance-agent.service is ordered before %s, which it starts", u)
		}
		if err == nil && strings.Contains(string(ours), "After=appliance-agent.service") {
			t.Errorf("%s is ordered after appliance-agent.service, which starts it", u)
		}
	}
}

// TestServiceNamesAndChecks: names are unique (configure NAME picks by them) and
// checks have exactly one probe.
func TestServiceNamesAndChecks(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Stack {
		spec := s.Spec(fullEnv)
		if spec.Name == "" || seen[spec.Name] {
			t.Errorf("service name %q empty or repeated", spec.Name)
		}
		seen[spec.Name] = true
		for _, c := range spec.Checks {
			if (c.HTTP == "") == (c.TCP == "") {
				t.Errorf("%s: check %q needs exactly one of HTTP and TCP", spec.Name, c.Name)
			}
		}
	}
}
