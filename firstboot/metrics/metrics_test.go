package metrics_test

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/metrics"
)

// TestWriteIsReadableByTheExporter: the file parses as the text format node-exporter
// reads, holds the values with their labels, and nothing else is left in the directory.
func TestWriteIsReadableByTheExporter(t *testing.T) {
	m, err := machine.New(t.TempDir(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []float64{1, 1733400000} { // a second write replaces the first
		err = metrics.Write(m, "backup",
			metrics.Gauge{Name: "backup_last_start_time", Help: "start of the last backup", Value: v},
			metrics.Gauge{Name: "appliance_version", Help: "the agent's version", Labels: map[string]string{"version": "abc"}, Value: 1})
		if err != nil {
			t.Fatal(err)
		}
	}
	dir := m.Path(metrics.TextfileDir)
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "backup.prom" {
		t.Fatalf("files in %s: %v", dir, entries)
	}
	f, err := os.Open(filepath.Join(dir, "backup.prom"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v", st.Mode().Perm())
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatal(err)
	}
	if g := families["backup_last_start_time"].GetMetric()[0].GetGauge().GetValue(); g != 1733400000 {
		t.Errorf("backup_last_start_time = %v", g)
	}
	if l := families["appliance_version"].GetMetric()[0].GetLabel()[0]; l.GetName() != "version" || l.GetValue() != "abc" {
		t.Errorf("appliance_version label %v", l)
	}
	if err := metrics.Write(m, "bad", metrics.Gauge{Name: "has space"}); err == nil || !strings.Contains(err.Error(), "has space") {
		t.Errorf("a bad name: %v", err)
	}
}
