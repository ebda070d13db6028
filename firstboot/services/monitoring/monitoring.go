// Package monitoring is Prometheus on the appliance, from Debian's packages (patched
// by apt like the rest, no images to fetch). appliance.metric.exporter runs the node
// exporter (with the agent's textfile directory) and the PostgreSQL, nginx and redis
// exporters; appliance.metric.server runs Prometheus with the original's alert rules
// and Alertmanager, whose alerts go to root by mail and, through the agent's relay, to
// appliance.sentry.dsn. Everything listens on loopback only: an admin reaches it
// through an SSH tunnel. Units an env does not use are stopped.
package monitoring

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/metrics"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/cache"
	"github.com/ethikkom/ecs-appliance/firstboot/services/mail"
	"github.com/ethikkom/ecs-appliance/firstboot/services/monitoring/rules"
	"github.com/ethikkom/ecs-appliance/firstboot/services/nginx"
	"github.com/ethikkom/ecs-appliance/firstboot/services/postgresql"
)

const (
	PrometheusConf   = "/etc/prometheus/prometheus.yml"
	AlertmanagerConf = "/etc/prometheus/alertmanager.yml"
	// The original's places and retention.
	PrometheusData   = "/volatile/prometheus"
	AlertmanagerData = "/volatile/alertmanager"
	Retention        = "30d"
	// RelayUnit runs `appliance-agent alert-relay` on RelayAddress (static in the
	// image): Alertmanager's webhook to Sentry.
	RelayUnit    = "appliance-alert-relay.service"
	RelayAddress = "127.0.0.1:9095"
	// Role is the PostgreSQL role of the exporter, which connects over the socket as
	// the system user of the same name (peer authentication: no password to keep).
	Role = "prometheus"
)

// daemon is one of Debian's Prometheus packages: its unit, /etc/default file and
// binary share the package's name.
type daemon struct {
	Job, Address string // the scrape job and where it listens
	pkg          string
	args         []string // besides --web.listen-address
	env          string   // another line of its /etc/default file
}

func (d daemon) unit() string         { return d.pkg + ".service" }
func (d daemon) defaultsPath() string { return "/etc/default/" + d.pkg }

// exporters are what appliance.metric.exporter runs.
var exporters = []daemon{
	{Job: "node", Address: "127.0.0.1:9100", pkg: "prometheus-node-exporter",
		args: []string{"--collector.textfile.directory=" + metrics.TextfileDir}},
	{Job: "postgresql", Address: "127.0.0.1:9187", pkg: "prometheus-postgres-exporter",
		env: "DATA_SOURCE_NAME='user=" + Role + " host=/run/postgresql dbname=postgres'"},
	{Job: "nginx", Address: "127.0.0.1:9113", pkg: "prometheus-nginx-exporter",
		args: []string{"--nginx.scrape-uri=" + nginx.StubStatusURL}},
	{Job: "redis", Address: "127.0.0.1:9121", pkg: "prometheus-redis-exporter",
		args: []string{fmt.Sprintf("--redis.addr=redis://127.0.0.1:%d", cache.RedisPort)}},
}

// server is what appliance.metric.server runs.
var (
	prometheus = daemon{Job: "prometheus", Address: "127.0.0.1:9090", pkg: "prometheus",
		args: []string{"--config.file=" + PrometheusConf, "--storage.tsdb.path=" + PrometheusData, "--storage.tsdb.retention.time=" + Retention}}
	// An empty cluster address turns off the gossip port (9094 on every address).
	alertmanager = daemon{Job: "alertmanager", Address: "127.0.0.1:9093", pkg: "prometheus-alertmanager",
		args: []string{"--config.file=" + AlertmanagerConf, "--storage.path=" + AlertmanagerData, "--cluster.listen-address="}}
)

//go:embed prometheus.yml.tmpl
var prometheusText string

//go:embed alertmanager.yml.tmpl
var alertmanagerText string

var (
	prometheusTmpl   = template.Must(template.New("prometheus.yml").Parse(prometheusText))
	alertmanagerTmpl = template.Must(template.New("alertmanager.yml").Parse(alertmanagerText))
)

// Service is the exporters, Prometheus and Alertmanager.
type Service struct{}

// daemons are the daemons e runs.
func daemons(e *env.Env) []daemon {
	var ds []daemon
	if e.Appliance.Metric.Exporters() {
		ds = append(ds, exporters...)
	}
	if e.Appliance.Metric.Server {
		ds = append(ds, prometheus, alertmanager)
	}
	return ds
}

// relay says whether alerts go to Sentry too.
func relay(e *env.Env) bool { return e.Appliance.Metric.Server && e.Appliance.Sentry.DSN != "" }

// allUnits is every unit the service may run.
func allUnits() []string {
	units := []string{RelayUnit}
	for _, d := range append(slices.Clone(exporters), prometheus, alertmanager) {
		units = append(units, d.unit())
	}
	return units
}

// Spec implements services.Service.
func (Service) Spec(e *env.Env) services.Spec {
	s := services.Spec{
		Name:   "monitoring",
		Reads:  []string{"appliance.metric.exporter", "appliance.metric.server", "appliance.sentry.dsn"},
		Reload: services.Restart, // the daemons read their flags only at start
	}
	for _, d := range daemons(e) {
		s.Units = append(s.Units, d.unit())
		s.Checks = append(s.Checks, services.Check{Name: d.Job, TCP: d.Address})
	}
	if relay(e) {
		s.Units = append(s.Units, RelayUnit)
		s.Checks = append(s.Checks, services.Check{Name: "alert relay", TCP: RelayAddress})
	}
	if e.Appliance.Metric.Server {
		s.Dirs = []machine.Dir{
			{Path: PrometheusData, Owner: "prometheus", Mode: 0o750},
			{Path: AlertmanagerData, Owner: "prometheus", Mode: 0o750},
		}
	}
	return s
}

// Prepare stops the units an env no longer uses (a switch turned off): the image
// leaves them disabled, so they start only when the agent starts them.
func (s Service) Prepare(ctx context.Context, c *services.Context) error {
	used := s.Spec(c.Env).Units
	var unused []string
	for _, u := range allUnits() {
		if !slices.Contains(used, u) {
			unused = append(unused, u)
		}
	}
	active, err := c.M.Systemd.Active(ctx, unused)
	if err != nil || len(active) == 0 {
		return err
	}
	if err := c.M.Systemd.Stop(ctx, active...); err != nil {
		return err
	}
	c.M.Out.Detail("stopped %s: appliance.metric no longer asks for it", strings.Join(active, " "))
	c.Did()
	return nil
}

// Files implements services.Service: the daemons' /etc/default files, and for the
// server its configuration and rules, each checked by the daemon's own tool.
func (Service) Files(c *services.Context) ([]machine.File, error) {
	e := c.Env
	var files []machine.File
	for _, d := range daemons(e) {
		files = append(files, defaults(d))
	}
	if !e.Appliance.Metric.Server {
		return files, nil
	}
	site := e.Appliance.Domain
	var p, a bytes.Buffer
	err := prometheusTmpl.Execute(&p, map[string]any{
		"Site": site, "Rules": rules.Path, "Alertmanager": alertmanager.Address,
		"Prometheus": prometheus.Address, "Exporters": exporters,
	})
	if err != nil {
		return nil, err
	}
	am := map[string]any{"Site": site, "Smarthost": fmt.Sprintf("127.0.0.1:%d", mail.SubmissionPort)}
	if relay(e) {
		am["Relay"] = RelayAddress
	}
	if err := alertmanagerTmpl.Execute(&a, am); err != nil {
		return nil, err
	}
	// The rules before the configuration that names them: promtool reads both.
	return append(files,
		machine.File{Path: rules.Path, Data: rules.Text, Check: tool("promtool", "check", "rules")},
		machine.File{Path: PrometheusConf, Data: p.Bytes(), Check: promtoolConfig},
		machine.File{Path: AlertmanagerConf, Data: a.Bytes(), Check: tool("amtool", "check-config")},
	), nil
}

// defaults is d's /etc/default file, which Debian's unit reads ($ARGS); the daemon
// itself checks its flags.
func defaults(d daemon) machine.File {
	args := append([]string{"--web.listen-address=" + d.Address}, d.args...)
	text := fmt.Sprintf("# Written by appliance-agent at every boot from env.yml; edits here are overwritten.\n# Read by %s: loopback only.\n", d.unit())
	if d.env != "" {
		text += d.env + "\n"
	}
	text += fmt.Sprintf("ARGS=%q\n", strings.Join(args, " "))
	return machine.File{Path: d.defaultsPath(), Data: []byte(text), Check: flagsCheck(d.pkg, args)}
}

// flagsCheck has the daemon parse its flags and print its version: a flag it does
// not know fails before it would print.
func flagsCheck(binary string, args []string) func(context.Context, *machine.Machine, string) error {
	return func(ctx context.Context, m *machine.Machine, _ string) error {
		if _, err := m.Run(ctx, machine.Command{Name: binary, Args: append(slices.Clone(args), "--version")}); err != nil {
			return fmt.Errorf("%s refuses its flags: %w", binary, err)
		}
		return nil
	}
}

// tool runs a checker on the candidate file (its error carries the checker's output).
func tool(name string, args ...string) func(context.Context, *machine.Machine, string) error {
	return func(ctx context.Context, m *machine.Machine, candidate string) error {
		_, err := m.Run(ctx, machine.Command{Name: name, Args: append(slices.Clone(args), candidate)})
		return err
	}
}

// promtoolConfig checks the configuration with the rule file it names, looked up in
// the machine's tree.
func promtoolConfig(ctx context.Context, m *machine.Machine, candidate string) error {
	data, err := os.ReadFile(candidate)
	if err != nil {
		return err
	}
	dir, remove, err := machine.Scratch(map[string][]byte{"prometheus.yml": m.Localize(data, rules.Path)})
	if err != nil {
		return err
	}
	defer remove()
	return tool("promtool", "check", "config")(ctx, m, filepath.Join(dir, "prometheus.yml"))
}

// Finish gives the PostgreSQL exporter its role: pg_monitor reads the statistics
// views and nothing of ECS's data.
func (Service) Finish(ctx context.Context, c *services.Context) error {
	if !c.Env.Appliance.Metric.Exporters() {
		return nil
	}
	if !c.M.Live() {
		c.M.Out.Detail("would create role %s (pg_monitor) when missing (not the running system)", Role)
		return nil
	}
	exists, err := postgresql.Query(ctx, c.M, "", "SELECT 1 FROM pg_roles WHERE rolname = '"+Role+"'")
	if err != nil || exists != "" {
		return err
	}
	if _, err := postgresql.Query(ctx, c.M, "", "CREATE ROLE "+Role+" LOGIN; GRANT pg_monitor TO "+Role); err != nil {
		return err
	}
	c.M.Out.Detail("created role %s (pg_monitor)", Role)
	c.Did()
	return nil
}
