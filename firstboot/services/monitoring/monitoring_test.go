package monitoring

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/monitoring/rules"
	"github.com/ethikkom/ecs-appliance/firstboot/services/servicetest"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// The template env has exporter and server on and a Sentry DSN.
func switches(exporter, server, dsn bool) func(string) string {
	return func(s string) string {
		s = strings.Replace(s, "exporter: true", "exporter: "+boolText(exporter), 1)
		s = strings.Replace(s, "server: true", "server: "+boolText(server), 1)
		if !dsn {
			s = strings.Replace(s, "dsn: https://abc123@sentry.example.org/2", "dsn: ''", 1)
		}
		return s
	}
}

func boolText(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

func requireTools(t *testing.T) {
	testtool.Require(t, "promtool", "amtool", "prometheus", "prometheus-alertmanager", "prometheus-node-exporter",
		"prometheus-postgres-exporter", "prometheus-nginx-exporter", "prometheus-redis-exporter")
}

// TestRenders: each variant's files equal their golden copies and pass the daemons'
// own checks (promtool, amtool, each daemon parsing its flags).
func TestRenders(t *testing.T) {
	requireTools(t)
	for _, tc := range []struct {
		variant               string
		exporter, server, dsn bool
		files                 int
	}{
		{"server", true, true, true, 9},
		{"server-no-sentry", false, true, false, 9},
		{"exporter", true, false, true, 4},
		{"off", false, false, true, 0},
	} {
		t.Run(tc.variant, func(t *testing.T) {
			c := servicetest.Context(t, switches(tc.exporter, tc.server, tc.dsn), services.Facts{})
			files, err := Service{}.Files(c)
			if err != nil {
				t.Fatal(err)
			}
			if len(files) != tc.files {
				t.Fatalf("%d files, want %d", len(files), tc.files)
			}
			if len(files) > 0 {
				// The rules are embedded as they are: their own package tests them.
				servicetest.Golden(t, tc.variant, slices.DeleteFunc(slices.Clone(files), func(f machine.File) bool { return f.Path == rules.Path }))
				servicetest.Checked(t, c.M, files)
			}
		})
	}
}

// TestSpec: the units follow the switches; the relay runs only with a DSN to send to.
func TestSpec(t *testing.T) {
	for _, tc := range []struct {
		exporter, server, dsn bool
		want                  []string
	}{
		{false, false, true, nil},
		{true, false, true, []string{"prometheus-node-exporter.service", "prometheus-postgres-exporter.service", "prometheus-nginx-exporter.service", "prometheus-redis-exporter.service"}},
		{false, true, false, []string{"prometheus-node-exporter.service", "prometheus-postgres-exporter.service", "prometheus-nginx-exporter.service", "prometheus-redis-exporter.service", "prometheus.service", "prometheus-alertmanager.service"}},
		{false, true, true, []string{"prometheus-node-exporter.service", "prometheus-postgres-exporter.service", "prometheus-nginx-exporter.service", "prometheus-redis-exporter.service", "prometheus.service", "prometheus-alertmanager.service", RelayUnit}},
	} {
		c := servicetest.Context(t, switches(tc.exporter, tc.server, tc.dsn), services.Facts{})
		spec := Service{}.Spec(c.Env)
		if !slices.Equal(spec.Units, tc.want) {
			t.Errorf("exporter %v server %v dsn %v: units %v, want %v", tc.exporter, tc.server, tc.dsn, spec.Units, tc.want)
		}
		if len(spec.Checks) != len(tc.want) {
			t.Errorf("exporter %v server %v: %d checks for %d units", tc.exporter, tc.server, len(spec.Checks), len(tc.want))
		}
		for _, ch := range spec.Checks {
			if !strings.HasPrefix(ch.TCP, "127.0.0.1:") {
				t.Errorf("%s listens on %s, not loopback", ch.Name, ch.TCP)
			}
		}
	}
}

// TestCheckersReject: each kind of checker refuses a broken file, and the old file
// stays.
func TestCheckersReject(t *testing.T) {
	requireTools(t)
	c := servicetest.Context(t, nil, services.Facts{})
	files, err := Service{}.Files(c)
	if err != nil {
		t.Fatal(err)
	}
	servicetest.Checked(t, c.M, files)
	byPath := map[string]machine.File{}
	for _, f := range files {
		byPath[f.Path] = f
	}
	for _, tc := range []struct {
		path, old, new, want string
	}{
		{AlertmanagerConf, "group_wait: 30s", "group_wait: soon", "amtool"},
		{PrometheusConf, "scrape_interval: 15s", "scrape_interval: often", "promtool"},
		{rules.Path, "expr:", "expr: sum(", "promtool"},
	} {
		f := byPath[tc.path]
		if !strings.Contains(string(f.Data), tc.old) {
			t.Fatalf("%s has no %q", tc.path, tc.old)
		}
		f.Data = []byte(strings.Replace(string(f.Data), tc.old, tc.new, 1))
		if _, err := c.M.WriteFile(context.Background(), f); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s with %q: %v, want a refusal by %s", tc.path, tc.new, err, tc.want)
		}
		if kept, _ := os.ReadFile(c.M.Path(tc.path)); string(kept) != string(byPath[tc.path].Data) {
			t.Errorf("%s: the refused file replaced the working one", tc.path)
		}
	}
	// A flag the daemon does not know.
	node := exporters[0]
	node.args = append(node.args, "--collector.textfile.dir=/x")
	if _, err := c.M.WriteFile(context.Background(), defaults(node)); err == nil || !strings.Contains(err.Error(), "prometheus-node-exporter refuses its flags") {
		t.Errorf("a misspelt flag: %v", err)
	}
}
