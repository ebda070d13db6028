package agent

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/ethikkom/ecs-appliance/firstboot/metrics"
	"github.com/ethikkom/ecs-appliance/firstboot/services/app"
	"github.com/ethikkom/ecs-appliance/firstboot/services/backup"
)

// Backup is what appliance-backup.timer runs: a dump of the database, then
// duplicity of the vault and the dumps to appliance.backup.url. A success is
// recorded in the state (backup_last_*) and as metrics; a failure is reported to
// Sentry and fails the unit.
func Backup(ctx context.Context, opt Options) error {
	b, err := liveBoot(opt)
	if err != nil {
		return err
	}
	res, err := backup.Run(ctx, b.m, b.env)
	for _, w := range res.Warnings {
		b.m.Out.Line("backup: warning: %s", w)
	}
	if err != nil {
		msg := "backup failed: " + err.Error()
		sendReport(ctx, b.m, b.env, nil, "backup", msg)
		return errors.New(msg)
	}
	b.m.Out.Line("backup: %s backup in %s, %s written, %s backed up", res.Kind, res.Duration.Round(time.Second), backup.Size(res.Written), backup.Size(res.Source))
	gauges := []metrics.Gauge{
		{Name: "backup_last_start_time", Help: "Start of the last successful backup, Unix time.", Value: float64(res.Start.Unix())},
		{Name: "backup_last_duration", Help: "Duration of the last successful backup, seconds.", Value: res.Duration.Seconds()},
		{Name: "backup_last_size", Help: "Bytes the last backup added at the target.", Value: float64(res.Written)},
		{Name: "backup_last_data_size", Help: "Bytes of the files the last backup covered.", Value: float64(res.Source)},
		{Name: "backup_last_full", Help: "1 if the last backup started a full chain.", Value: boolValue(res.Kind == "full")},
		{Name: "backup_last_volumes", Help: "Volumes of the set the last backup wrote (-1: unknown).", Value: float64(res.Volumes)},
	}
	if err := metrics.Write(b.m, "backup", gauges...); err != nil {
		b.m.Out.Line("metrics: %v", err)
	}
	store, err := OpenState(ctx, b.root)
	if err != nil {
		return err
	}
	defer store.Close()
	for name, value := range map[string]string{
		"backup_last_start": res.Start.UTC().Format(time.RFC3339), "backup_last_duration": res.Duration.Round(time.Second).String(),
		"backup_last_kind": res.Kind, "backup_last_size": strconv.FormatInt(res.Written, 10),
		"backup_last_volumes": strconv.Itoa(res.Volumes),
	} {
		if err := store.SetTag(ctx, name, value); err != nil {
			return err
		}
	}
	return nil
}

// Restore fills an appliance whose vault and dump directory are empty from the
// newest backup at appliance.backup.url (its own or the original appliance's), then
// loads the database from its dump, keeping a database that was there under another
// name, and starts the build served on it (migrating what it lacks). onlyFiles stops
// after the files, as the original's --only-restore.
func Restore(ctx context.Context, opt Options, onlyFiles bool) error {
	b, err := liveBoot(opt)
	if err != nil {
		return err
	}
	// Refused before anything stops, when there is something to lose.
	if err := backup.CheckRestore(b.m); err != nil {
		return err
	}
	if b.store, err = OpenState(ctx, b.root); err != nil {
		return err
	}
	defer b.closeStore()
	if err := b.m.Systemd.Stop(ctx, app.Unit); err != nil {
		return err
	}
	res, err := backup.Restore(ctx, b.m, b.env, backup.RestoreOptions{OnlyFiles: onlyFiles})
	if err != nil {
		msg := "restore failed: " + err.Error()
		sendReport(ctx, b.m, b.env, b.store, "restore", msg)
		return errors.New(msg)
	}
	b.m.Out.Line("restore: %d directories in %s", len(res.Restored), res.Duration.Round(time.Second))
	if res.Kept != "" {
		b.m.Out.Line("restore: the database that was there is kept as %s (drop it when you no longer need it)", res.Kept)
	}
	if onlyFiles {
		b.m.Out.Line("restore: the files are in place; the database was not touched (--only-restore)")
		return nil
	}
	out, err := b.lifecycle().Reinstall(ctx)
	if errors.Is(err, app.ErrNoBuild) {
		b.m.Out.Line("restore: no build of ECS to start on it yet; the next boot or app update deploys one")
		return nil
	}
	if err := b.appOutcome(out, err); err != nil {
		return err
	}
	if err := b.publishApp(); err != nil {
		return err
	}
	b.m.Out.Line("restore: ECS %s serves the restored data", out.Serving)
	return nil
}
