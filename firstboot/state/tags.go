package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Tags of the original appliance (/app/etc/tags), one value each.
const (
	TagLastRunningECS       = "last_running_ecs"       // ECS commit deployed now
	TagLastBuildECS         = "last_build_ecs"         // last commit built successfully
	TagLastMigrationECS     = "last_migration_ecs"     // commit of the last database migration
	TagLastRunningECSImage  = "last_running_ecs_image" // docker image id of the running ECS
	TagLastFailedECS        = "last_failed_ecs"        // commit that failed to start
	TagLastRunningAppliance = "last_running_appliance" // appliance version deployed now
)

// Flags of the original appliance (/app/etc/flags, where a file's existence meant on).
const (
	FlagForceUpdateECS         = "force.update.ecs"
	FlagForceUpdateAppliance   = "force.update.appliance"
	FlagForceUpdateSystem      = "force.update.system"
	FlagForceUpdateDocker      = "force.update.docker"
	FlagForceUpdateCompose     = "force.update.compose"
	FlagForceUpdatePostgres    = "force.update.postgres"
	FlagForceUpdateLetsencrypt = "force.update.letsencrypt"
	FlagMetricExporter         = "metric.exporter"
	FlagMetricServer           = "metric.server"
	FlagMetricGUI              = "metric.gui"
	FlagMetricPghero           = "metric.pghero"
)

// Tag is a stored tag.
type Tag struct {
	Name      string
	Value     string
	UpdatedAt time.Time
}

// Flag is a stored flag; a cleared flag stays listed as off, with the time it was cleared.
type Flag struct {
	Name  string
	On    bool
	SetAt time.Time
}

// SetTag stores value under name.
func (s *Store) SetTag(ctx context.Context, name, value string) error {
	if err := checkName(name); err != nil {
		return err
	}
	err := s.transact(ctx, func(tx *sql.Tx) error { return setTag(ctx, tx, name, value) })
	if err != nil {
		return fmt.Errorf("state: set tag %s: %w", name, err)
	}
	return nil
}

func setTag(ctx context.Context, tx *sql.Tx, name, value string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO tags (name, value, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		name, value, formatTime(time.Now()))
	return err
}

// Tag returns the value of the tag name; ok is false when it is not set.
func (s *Store) Tag(ctx context.Context, name string) (value string, ok bool, err error) {
	err = retry(ctx, func(ctx context.Context) error {
		return s.db.QueryRowContext(ctx, `SELECT value FROM tags WHERE name = ?`, name).Scan(&value)
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("state: read tag %s: %w", name, err)
	}
	return value, true, nil
}

// DeleteTag removes the tag name; removing a tag that is not set is no error.
func (s *Store) DeleteTag(ctx context.Context, name string) error {
	err := s.transact(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM tags WHERE name = ?`, name)
		return err
	})
	if err != nil {
		return fmt.Errorf("state: delete tag %s: %w", name, err)
	}
	return nil
}

// Tags returns every tag, by name.
func (s *Store) Tags(ctx context.Context) ([]Tag, error) {
	var tags []Tag
	err := retry(ctx, func(ctx context.Context) error {
		tags = nil
		rows, err := s.db.QueryContext(ctx, `SELECT name, value, updated_at FROM tags ORDER BY name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var t Tag
			var at string
			if err := rows.Scan(&t.Name, &t.Value, &at); err != nil {
				return err
			}
			if t.UpdatedAt, err = parseTime(at); err != nil {
				return err
			}
			tags = append(tags, t)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("state: read tags: %w", err)
	}
	return tags, nil
}

// SetFlag turns the flag name on.
func (s *Store) SetFlag(ctx context.Context, name string) error {
	return s.putFlag(ctx, name, true)
}

// ClearFlag turns the flag name off (a flag never set is simply recorded as off).
func (s *Store) ClearFlag(ctx context.Context, name string) error {
	return s.putFlag(ctx, name, false)
}

func (s *Store) putFlag(ctx context.Context, name string, on bool) error {
	if err := checkName(name); err != nil {
		return err
	}
	err := s.transact(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO flags (name, enabled, set_at) VALUES (?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET enabled = excluded.enabled, set_at = excluded.set_at`,
			name, on, formatTime(time.Now()))
		return err
	})
	if err != nil {
		return fmt.Errorf("state: set flag %s to %t: %w", name, on, err)
	}
	return nil
}

// Flag reports whether the flag name is on; a flag never set is off.
func (s *Store) Flag(ctx context.Context, name string) (bool, error) {
	var on bool
	err := retry(ctx, func(ctx context.Context) error {
		return s.db.QueryRowContext(ctx, `SELECT enabled FROM flags WHERE name = ?`, name).Scan(&on)
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("state: read flag %s: %w", name, err)
	}
	return on, nil
}

// Flags returns every flag ever set or cleared, by name.
func (s *Store) Flags(ctx context.Context) ([]Flag, error) {
	var flags []Flag
	err := retry(ctx, func(ctx context.Context) error {
		flags = nil
		rows, err := s.db.QueryContext(ctx, `SELECT name, enabled, set_at FROM flags ORDER BY name`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var f Flag
			var at string
			if err := rows.Scan(&f.Name, &f.On, &at); err != nil {
				return err
			}
			if f.SetAt, err = parseTime(at); err != nil {
				return err
			}
			flags = append(flags, f)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("state: read flags: %w", err)
	}
	return flags, nil
}

// checkName accepts the names the original used as file names: letters, digits,
// '.', '_' and '-', not starting with '.', so every tag and flag can still be
// exported as a file.
func checkName(name string) error {
	if name == "" || len(name) > 255 || name[0] == '.' {
		return fmt.Errorf("state: invalid name %q: want 1 to 255 characters, not starting with '.'", name)
	}
	for _, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			return fmt.Errorf("state: invalid name %q: only letters, digits, '.', '_' and '-'", name)
		}
	}
	return nil
}

// timeLayout is fixed-width UTC, so stored times sort as text and read well in a
// dqlite shell.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) (time.Time, error) { return time.Parse(timeLayout, s) }
