package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Tags of the original appliance (/app/etc/tags), one value each, and the two this
// appliance adds (the source of the running build, the last rollback).
const (
	TagLastRunningECS       = "last_running_ecs"       // ECS commit served now
	TagLastBuildECS         = "last_build_ecs"         // the last commit built
	TagLastMigrationECS     = "last_migration_ecs"     // the commit of the last migration
	TagLastRunningECSImage  = "last_running_ecs_image" // the image id served now
	TagLastFailedECS        = "last_failed_ecs"        // commit that failed to build, migrate or start
	TagLastRollbackECS      = "last_rollback_ecs"      // "FAILED -> SERVED" of the last rollback
	TagECSSource            = "ecs_source"             // source and branch or commit of the running build
	TagLastRunningAppliance = "last_running_appliance" // appliance version deployed now
)

// Tag is a stored tag.
type Tag struct {
	Name      string
	Value     string
	UpdatedAt time.Time
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

// checkName accepts the names the original used as file names: letters, digits,
// '.', '_' and '-', not starting with '.', so every tag can still be exported as a
// file.
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
