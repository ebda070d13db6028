// Package metrics writes the agent's own metrics for node-exporter's textfile
// collector, as the original's mk_metric did: one file per topic in TextfileDir,
// replaced atomically, so the exporter never reads half a file.
package metrics

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/ethikkom/ecs-appliance/firstboot/machine"
)

// TextfileDir is where the files go (the original's path); the exporter reads it.
const TextfileDir = "/app/etc/metric_import"

// Gauge is one sample.
type Gauge struct {
	Name   string
	Help   string
	Labels map[string]string
	Value  float64
}

// Write replaces TextfileDir/TOPIC.prom with gauges.
func Write(m *machine.Machine, topic string, gauges ...Gauge) error {
	reg := prometheus.NewRegistry()
	for _, g := range gauges {
		// The classic names only: Debian's node-exporter (1.5 on bookworm) cannot
		// read the quoted UTF-8 names the current format allows.
		if !model.LegacyValidation.IsValidMetricName(g.Name) {
			return fmt.Errorf("metric %q: not a classic Prometheus name", g.Name)
		}
		for l := range g.Labels {
			if !model.LegacyValidation.IsValidLabelName(l) {
				return fmt.Errorf("metric %s: label %q: not a classic Prometheus name", g.Name, l)
			}
		}
		c := prometheus.NewGauge(prometheus.GaugeOpts{Name: g.Name, Help: g.Help, ConstLabels: g.Labels})
		c.Set(g.Value)
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("metric %s: %w", g.Name, err)
		}
	}
	dir := m.Path(TextfileDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// WriteToTextfile writes a temporary file beside the target (not named *.prom,
	// so the collector skips it) and renames it into place, mode 0644.
	return prometheus.WriteToTextfile(filepath.Join(dir, topic+".prom"), reg)
}
