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

// End finishes the run: failed when err is not nil or a phase failed, unchanged when
// every phase was unchanged, ok otherwise.
func (r *Run) End(ended time.Time, err error) {
	r.Ended, r.Result, r.Error = ended, ResultOK, ""
	unchanged := len(r.Phases) > 0
	for _, p := range r.Phases {
		if p.Result == ResultFailed && r.Result != ResultFailed {
			r.Result, r.Error = ResultFailed, "phase "+p.Name+": "+p.Error
		}
		unchanged = unchanged && p.Result == ResultUnchanged
	}
	switch {
	case err != nil:
		r.Result, r.Error = ResultFailed, err.Error()
	case r.Result == ResultOK && unchanged:
		r.Result = ResultUnchanged
	}
}

// BeginRun records the start of a run and returns its id. Runs are told apart by
// their start time, so beginning the same one twice returns the same id.
func (s *Store) BeginRun(ctx context.Context, started time.Time) (int64, error) {
	var id int64
	err := s.transact(ctx, func(tx *sql.Tx) (err error) {
		id, err = insertRun(ctx, tx, started)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("state: begin run: %w", err)
	}
	return id, nil
}

// RecordPhase adds a finished phase to the run runID; recording a phase of the same
// name again replaces it.
func (s *Store) RecordPhase(ctx context.Context, runID int64, p Phase) error {
	if err := checkPhase(p); err != nil {
		return err
	}
	err := s.transact(ctx, func(tx *sql.Tx) error {
		if err := runExists(ctx, tx, runID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO phases (run_id, seq, name, started, ended, result, error)
			VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM phases WHERE run_id = ?), ?, ?, ?, ?, ?)
			ON CONFLICT (run_id, name) DO UPDATE SET started = excluded.started,
				ended = excluded.ended, result = excluded.result, error = excluded.error`,
			runID, runID, p.Name, formatTime(p.Started), formatTime(p.Ended), string(p.Result), p.Error)
		return err
	})
	if err != nil {
		return fmt.Errorf("state: record phase %s of run %d: %w", p.Name, runID, err)
	}
	return nil
}

// EndRun records the end of the run runID.
func (s *Store) EndRun(ctx context.Context, runID int64, ended time.Time, result Result, errMsg string) error {
	if !result.valid() {
		return fmt.Errorf("state: end run %d: invalid result %q", runID, result)
	}
	err := s.transact(ctx, func(tx *sql.Tx) error {
		if err := runExists(ctx, tx, runID); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE runs SET ended = ?, result = ?, error = ? WHERE id = ?`,
			formatTime(ended), string(result), errMsg, runID)
		return err
	})
	if err != nil {
		return fmt.Errorf("state: end run %d: %w", runID, err)
	}
	return nil
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
// (a retried insert), and returns its id.
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
