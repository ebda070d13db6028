package agent

import (
	"context"

	"github.com/ethikkom/ecs-appliance/firstboot/metrics"
	"github.com/ethikkom/ecs-appliance/firstboot/report"
	"github.com/ethikkom/ecs-appliance/firstboot/state"
)

// writeMetrics leaves the run's figures for node-exporter's textfile collector: the
// agent's version, the ECS build served and its last migration, and the certificate's
// end (letsencrypt_valid_until, the original's name, for every source of the
// certificate, so that its alert also covers an expiring own certificate).
func (b *boot) writeMetrics(ctx context.Context) {
	gauges := []metrics.Gauge{{Name: "appliance_version", Help: "The agent's version (label).", Labels: map[string]string{"version": report.Version()}, Value: 1}}
	if b.sc != nil && b.sc.Certificate != nil {
		gauges = append(gauges, metrics.Gauge{Name: "letsencrypt_valid_until", Help: "End of the server certificate's validity, Unix time.",
			Labels: map[string]string{"domain": b.env.Appliance.Domain, "source": b.sc.Certificate.Source}, Value: float64(b.sc.Certificate.NotAfter.Unix())})
	}
	if b.store != nil {
		if tags, err := b.store.Tags(ctx); err == nil {
			for _, t := range tags {
				switch t.Name {
				case state.TagLastRunningECS:
					gauges = append(gauges, metrics.Gauge{Name: "ecs_version", Help: "The ECS commit served (label).", Labels: map[string]string{"git_rev": t.Value}, Value: 1})
				case state.TagLastMigrationECS:
					gauges = append(gauges, metrics.Gauge{Name: "ecs_last_migrate", Help: "Time of the last migration of ECS's database, Unix time.", Value: float64(t.UpdatedAt.Unix())})
				}
			}
		}
	}
	if err := metrics.Write(b.m, "appliance", gauges...); err != nil {
		b.m.Out.Line("metrics: %v", err)
	}
}
