package state

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Result is the outcome of a run or a phase.
type Result string

// The outcomes; a run still going (or cut short by a crash) has none.
const (
	ResultOK        Result = "ok"        // done, something changed
	ResultFailed    Result = "failed"    // stopped with an error
	ResultUnchanged Result = "unchanged" // nothing needed doing
)

func (r Result) valid() bool {
	return r == ResultOK || r == ResultFailed || r == ResultUnchanged
}

// Phase is one finished step of a run (discover, activate, storage, …).
type Phase struct {
	Name    string
	Started time.Time
	Ended   time.Time
	Result  Result
	Error   string
}

// Run is one boot of the agent. The agent fills one in memory from the start, since
// the first phases run before storage and therefore the store exist, and writes it
// with SaveRun once the store is open.
type Run struct {
	ID      int64 // set once stored; 0 before
	Started time.Time
	Ended   time.Time // zero while running
	Result  Result    // empty while running
	Error   string
	Phases  []Phase
}

// AddPhase appends a finished phase and returns it: failed with err's message when
// err is not nil, else with result.
func (r *Run) AddPhase(name string, started, ended time.Time, result Result, err error) Phase {
	p := Phase{Name: name, Started: started, Ended: ended, Result: result}
	if err != nil {
		p.Result, p.Error = ResultFailed, err.Error()
	}
	r.Phases = append(r.Phases, p)
	return p
}

// SaveRun writes run with all its phases in one transaction, so the stored run then
// equals run; it sets run.ID when the run was not stored before. Saving again after
// more phases (or the end) updates the same run.
func (s *Store) SaveRun(ctx context.Context, run *Run) error {
	if run.Result != "" && !run.Result.valid() {
		return fmt.Errorf("state: save run: invalid result %q", run.Result)
	}
	for _, p := range run.Phases {
		if err := checkPhase(p); err != nil {
			return err
		}
	}
	var id int64
	err := s.transact(ctx, func(tx *sql.Tx) (err error) {
		id = run.ID
		if id == 0 {
			if id, err = insertRun(ctx, tx, run.Started); err != nil {
				return err
			}
		} else if err := runExists(ctx, tx, id); err != nil {
			return err
		}
		var ended, result sql.NullString
		if !run.Ended.IsZero() {
			ended = sql.NullString{String: formatTime(run.Ended), Valid: true}
		}
		if run.Result != "" {
			result = sql.NullString{String: string(run.Result), Valid: true}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE runs SET started = ?, ended = ?, result = ?, error = ? WHERE id = ?`,
			formatTime(run.Started), ended, result, run.Error, id); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM phases WHERE run_id = ?`, id); err != nil {
			return err
		}
		for i, p := range run.Phases {
			if _, err := tx.ExecContext(ctx, `INSERT INTO phases (run_id, seq, name, started, ended, result, error)
				VALUES (?, ?, ?, ?, ?, ?, ?)`,
				id, i+1, p.Name, formatTime(p.Started), formatTime(p.Ended), string(p.Result), p.Error); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("state: save run: %w", err)
	}
	run.ID = id
	return nil
}

// Runs returns the last limit runs with their phases, newest first; limit <= 0
// returns all.
func (s *Store) Runs(ctx context.Context, limit int) ([]Run, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	var runs []Run
	err := s.transact(ctx, func(tx *sql.Tx) error {
		runs = nil
		rows, err := tx.QueryContext(ctx, `SELECT id, started, ended, result, error FROM runs
			ORDER BY id DESC LIMIT ?`, limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		index := map[int64]int{}
		for rows.Next() {
			var r Run
			var started string
			var ended, result sql.NullString
			if err := rows.Scan(&r.ID, &started, &ended, &result, &r.Error); err != nil {
				return err
			}
			if r.Started, err = parseTime(started); err != nil {
				return err
			}
			if ended.Valid {
				if r.Ended, err = parseTime(ended.String); err != nil {
					return err
				}
			}
			r.Result = Result(result.String)
			index[r.ID] = len(runs)
			runs = append(runs, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		return readPhases(ctx, tx, limit, runs, index)
	})
	if err != nil {
		return nil, fmt.Errorf("state: read runs: %w", err)
	}
	return runs, nil
}

// readPhases fills in the phases of the runs Runs read.
func readPhases(ctx context.Context, tx *sql.Tx, limit int, runs []Run, index map[int64]int) error {
	rows, err := tx.QueryContext(ctx, `SELECT run_id, name, started, ended, result, error FROM phases
		WHERE run_id IN (SELECT id FROM runs ORDER BY id DESC LIMIT ?) ORDER BY run_id, seq`, limit)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var runID int64
		var p Phase
		var started, ended, result string
		if err := rows.Scan(&runID, &p.Name, &started, &ended, &result, &p.Error); err != nil {
			return err
		}
		if p.Started, err = parseTime(started); err != nil {
			return err
		}
		if p.Ended, err = parseTime(ended); err != nil {
			return err
		}
		p.Result = Result(result)
		i := index[runID]
		runs[i].Phases = append(runs[i].Phases, p)
	}
	return rows.Err()
}

// insertRun stores a run start, or finds the run that started at the same instant
// (a retried save), and returns its id.
func insertRun(ctx context.Context, tx *sql.Tx, started time.Time) (int64, error) {
	at := formatTime(started)
	if _, err := tx.ExecContext(ctx, `INSERT INTO runs (started) VALUES (?) ON CONFLICT (started) DO NOTHING`, at); err != nil {
		return 0, err
	}
	var id int64
	err := tx.QueryRowContext(ctx, `SELECT id FROM runs WHERE started = ?`, at).Scan(&id)
	return id, err
}

func runExists(ctx context.Context, tx *sql.Tx, id int64) error {
	err := tx.QueryRowContext(ctx, `SELECT id FROM runs WHERE id = ?`, id).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("no run %d", id)
	}
	return err
}

func checkPhase(p Phase) error {
	if p.Name == "" {
		return errors.New("state: phase without a name")
	}
	if !p.Result.valid() {
		return fmt.Errorf("state: phase %s: invalid result %q", p.Name, p.Result)
	}
	return nil
}
