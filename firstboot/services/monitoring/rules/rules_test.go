package rules

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// promtool runs Debian's promtool, returning its combined output.
func promtool(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := testtool.Require(t, "promtool")[0]
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}

// checkRules checks text as Prometheus would load it: written to a file of its own.
func checkRules(t *testing.T, text []byte) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), filepath.Base(Path))
	if err := os.WriteFile(path, text, 0o644); err != nil {
		t.Fatal(err)
	}
	return promtool(t, "check", "rules", path)
}

func TestCheckRules(t *testing.T) {
	if out, err := checkRules(t, Text); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
}

// TestCheckRulesRejectsBrokenExpr proves the check is not vacuous.
func TestCheckRulesRejectsBrokenExpr(t *testing.T) {
	good := []byte("expr: changes(node_boot_time_seconds[1d]) > 1")
	broken := bytes.Replace(Text, good, []byte("expr: changes(node_boot_time_seconds[1d] > 1"), 1)
	if bytes.Equal(broken, Text) {
		t.Fatalf("%q is not in the rules", good)
	}
	out, err := checkRules(t, broken)
	if err == nil {
		t.Fatalf("promtool check rules accepted a broken expression:\n%s", out)
	}
	if !strings.Contains(out, "NodeRebootsTooOften") {
		t.Fatalf("promtool check rules failed, but not for the broken rule: %v\n%s", err, out)
	}
}

const unitTests = "testdata/appliance.rules.test.yml"

func TestRulesUnitTests(t *testing.T) {
	if out, err := promtool(t, "test", "rules", unitTests); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

// TestEveryAlertIsTested keeps the unit tests whole: each alert has a case where it
// fires and one where it must not, and no case names an alert that does not exist
// (promtool would pass a silent case for it without evaluating anything).
func TestEveryAlertIsTested(t *testing.T) {
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert       string
				Labels      map[string]string
				Annotations map[string]string
			}
		}
	}
	if err := yaml.Unmarshal(Text, &file); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(unitTests)
	if err != nil {
		t.Fatal(err)
	}
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string
				ExpAlerts []any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		}
	}
	if err := yaml.Unmarshal(raw, &tests); err != nil {
		t.Fatal(err)
	}
	named, fires, silent := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, g := range tests.Tests {
		for _, c := range g.AlertRuleTest {
			named[c.Alertname] = true
			if len(c.ExpAlerts) > 0 {
				fires[c.Alertname] = true
			} else {
				silent[c.Alertname] = true
			}
		}
	}
	alerts := map[string]bool{}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			switch r.Labels["severity"] {
			case "warning", "error", "critical":
			default:
				t.Errorf("%s: severity %q", r.Alert, r.Labels["severity"])
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: summary or description missing", r.Alert)
			}
			if !fires[r.Alert] || !silent[r.Alert] {
				t.Errorf("%s: a case where it fires: %v, where it must not: %v", r.Alert, fires[r.Alert], silent[r.Alert])
			}
		}
	}
	for name := range named {
		if !alerts[name] {
			t.Errorf("the unit tests name %s, which is no alert", name)
		}
	}
}
