// Package state is the first-boot agent's record of what happened: the tags the
// original appliance kept as files under /app/etc (last_running_ecs, …) and one row
// per boot with the outcome of every phase.
//
// It lives in an embedded dqlite node (go-dqlite's app package), bound to loopback
// unless told otherwise, so a single appliance needs no network while a later
// multi-node setup can join further nodes to the same store. Nothing secret belongs
// here: tags hold commit ids, versions and hashes, errors hold the agent's already
// scrubbed messages.
package state

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"time"

	"github.com/canonical/go-dqlite/app"
	"github.com/canonical/go-dqlite/client"
	"github.com/canonical/go-dqlite/driver"
)

// DefaultAddress is where a node listens when Options.Address is empty: loopback,
// because a single appliance has no peers and dqlite needs an address that stays
// the same across reboots (a DHCP lease does not).
const DefaultAddress = "127.0.0.1:9001"

// database is the name of the one dqlite database the store uses.
const database = "appliance"

// opTimeout bounds every store operation, retries included, so a cluster that lost
// its quorum makes the agent fail instead of hang.
const opTimeout = time.Minute

// handoverTimeout bounds the graceful part of Close; after it the node closes anyway.
const handoverTimeout = 10 * time.Second

// Options configure Open. The zero value is a single node on DefaultAddress.
type Options struct {
	// Address is the node's host:port; it must stay the same for the life of the
	// data directory (dqlite records it there).
	Address string
	// Join lists addresses of nodes already in a cluster. It matters only the first
	// time a data directory is used; afterwards the node knows its cluster.
	Join []string
	// Logger receives dqlite's messages; nil means slog.Default().
	Logger *slog.Logger
}

// Store is an open state store. Its methods are safe for concurrent use.
type Store struct {
	app *app.App
	db  *sql.DB
	log *slog.Logger
	// txSlot admits one transaction of this process at a time: dqlite answers a
	// second concurrent write transaction with "database is locked" instead of
	// waiting, and queueing here is cheaper than backing off.
	txSlot chan struct{}
}

// Open starts (or restarts) the dqlite node whose data lives in dir, waits until it
// is part of a cluster with a leader, and creates or upgrades the schema. dir is
// created if missing.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if opts.Address == "" {
		opts.Address = DefaultAddress
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	appOpts := []app.Option{app.WithAddress(opts.Address), app.WithLogFunc(logFunc(logger))}
	if len(opts.Join) > 0 {
		appOpts = append(appOpts, app.WithCluster(opts.Join))
	}
	node, err := app.New(dir, appOpts...)
	if err != nil {
		return nil, fmt.Errorf("state: start dqlite node %s in %s: %w", opts.Address, dir, err)
	}
	s := &Store{app: node, log: logger, txSlot: make(chan struct{}, 1)}
	if err := node.Ready(ctx); err != nil {
		s.abandon()
		return nil, fmt.Errorf("state: dqlite node %s not ready: %w", opts.Address, err)
	}
	if s.db, err = node.Open(ctx, database); err != nil {
		s.abandon()
		return nil, fmt.Errorf("state: open database: %w", err)
	}
	if err := s.migrate(ctx); err != nil {
		s.abandon()
		return nil, err
	}
	return s, nil
}

// Close hands this node's leadership and vote to another node, if there is one, and
// stops the node. A failed handover (no other node reachable) is logged, not returned:
// the node stops either way.
func (s *Store) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), handoverTimeout)
	defer cancel()
	if err := s.app.Handover(ctx); err != nil {
		s.log.Warn("state: dqlite handover failed, closing anyway", "err", err)
	}
	return s.abandon()
}

// abandon stops the node without a handover, as a crash would.
func (s *Store) abandon() error {
	var dbErr error
	if s.db != nil {
		dbErr = s.db.Close()
	}
	return errors.Join(dbErr, s.app.Close())
}

// logFunc feeds dqlite's printf-style messages into a slog.Logger.
func logFunc(l *slog.Logger) client.LogFunc {
	levels := map[client.LogLevel]slog.Level{
		client.LogDebug: slog.LevelDebug,
		client.LogInfo:  slog.LevelInfo,
		client.LogWarn:  slog.LevelWarn,
		client.LogError: slog.LevelError,
	}
	return func(level client.LogLevel, format string, a ...any) {
		lvl := levels[level]
		if l.Enabled(context.Background(), lvl) {
			l.Log(context.Background(), lvl, "dqlite: "+fmt.Sprintf(format, a...))
		}
	}
}

// migrations are the schema steps in order; schema_version holds how many ran.
// Only ever append: a deployed store has run the earlier ones.
var migrations = [][]string{
	{
		`CREATE TABLE tags (
			name       TEXT PRIMARY KEY,
			value      TEXT NOT NULL,
			updated_at TEXT NOT NULL)`,
		// flags is for the original's /app/etc/flags (force.update.ecs, …). Nothing
		// reads or writes it yet; it stays because deployed stores have it.
		`CREATE TABLE flags (
			name    TEXT PRIMARY KEY,
			enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),
			set_at  TEXT NOT NULL)`,
		// started is unique so that SaveRun can be retried safely.
		`CREATE TABLE runs (
			id      INTEGER PRIMARY KEY AUTOINCREMENT,
			started TEXT NOT NULL UNIQUE,
			ended   TEXT,
			result  TEXT CHECK (result IN ('ok', 'failed', 'unchanged')),
			error   TEXT NOT NULL DEFAULT '')`,
		`CREATE TABLE phases (
			run_id  INTEGER NOT NULL REFERENCES runs (id),
			seq     INTEGER NOT NULL,
			name    TEXT NOT NULL,
			started TEXT NOT NULL,
			ended   TEXT NOT NULL,
			result  TEXT NOT NULL CHECK (result IN ('ok', 'failed', 'unchanged')),
			error   TEXT NOT NULL DEFAULT '',
			PRIMARY KEY (run_id, name))`,
	},
}

// migrate brings the schema to len(migrations) in one transaction, so nodes opening
// at the same time and retries after a lost commit both end at the same schema.
func (s *Store) migrate(ctx context.Context) error {
	err := s.transact(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
			id      INTEGER PRIMARY KEY CHECK (id = 1),
			version INTEGER NOT NULL)`); err != nil {
			return err
		}
		var version int
		err := tx.QueryRowContext(ctx, `SELECT version FROM schema_version WHERE id = 1`).Scan(&version)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if version > len(migrations) {
			return fmt.Errorf("schema version %d is newer than this agent knows (%d)", version, len(migrations))
		}
		for _, step := range migrations[version:] {
			for _, stmt := range step {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return err
				}
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO schema_version (id, version) VALUES (1, ?)
			ON CONFLICT (id) DO UPDATE SET version = excluded.version`, len(migrations))
		return err
	})
	if err != nil {
		return fmt.Errorf("state: migrate schema: %w", err)
	}
	return nil
}

// transact runs fn in a transaction, retrying it as a whole. Every write of this
// package is idempotent, so repeating one whose commit reply was lost (a leader
// change during the commit) does not apply it twice.
func (s *Store) transact(ctx context.Context, fn func(*sql.Tx) error) error {
	select {
	case s.txSlot <- struct{}{}:
		defer func() { <-s.txSlot }()
	case <-ctx.Done():
		return ctx.Err()
	}
	return retry(ctx, func(ctx context.Context) error {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			_ = tx.Rollback() // the error that matters is fn's
			return err
		}
		return tx.Commit()
	})
}

// retry repeats op while the cluster has no usable leader (an election takes
// seconds) or another node's transaction holds the database, until op succeeds,
// fails otherwise, or opTimeout or ctx ends.
func retry(ctx context.Context, op func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	wait := 10 * time.Millisecond
	for {
		err := op(ctx)
		if err == nil || !transient(err) {
			return err
		}
		// Jitter, so writers on different nodes that collided do not collide again.
		t := time.NewTimer(wait/2 + rand.N(wait))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up: %w)", err, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, time.Second)
	}
}

// transient reports the errors a retry cures: a lost or not yet elected leader, and
// "database is locked" while another node's write transaction runs.
func transient(err error) bool {
	var dqErr driver.Error
	if errors.As(err, &dqErr) {
		return dqErr.Code&0xff == driver.ErrBusy
	}
	return errors.Is(err, sqldriver.ErrBadConn) || errors.Is(err, driver.ErrNoAvailableLeader)
}
