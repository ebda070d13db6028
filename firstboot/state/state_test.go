package state

import (
	"context"
	"errors"
	"fmt"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
	"log/slog"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testLogger keeps dqlite's join and election chatter out of test output but shows
// its errors.
var testLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

// deadline is a generous bound for anything that waits on dqlite.
func deadline(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// openSingle opens a one-node store in a fresh directory, closed when the test ends.
func openSingle(t testing.TB) (*Store, string) {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(deadline(t, 30*time.Second), dir, Options{Address: testtool.FreeAddress(t), Logger: testLogger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func at(sec int) time.Time { return time.Date(2026, 5, 1, 6, 30, sec, 123456789, time.UTC) }

func TestTags(t *testing.T) {
	s, _ := openSingle(t)
	ctx := deadline(t, time.Minute)

	if _, ok, err := s.Tag(ctx, TagLastRunningECS); err != nil || ok {
		t.Fatalf("unset tag: ok=%v err=%v", ok, err)
	}
	before := time.Now()
	for name, value := range map[string]string{
		TagLastRunningECS:       "0123abcd",
		"last_build_ecs":        "invalid",
		TagLastRunningAppliance: "v1",
	} {
		if err := s.SetTag(ctx, name, value); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetTag(ctx, "last_build_ecs", "0123abcd"); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.Tag(ctx, "last_build_ecs"); err != nil || !ok || v != "0123abcd" {
		t.Fatalf("Tag = %q, %v, %v; want the overwritten value", v, ok, err)
	}
	if err := s.DeleteTag(ctx, TagLastRunningAppliance); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteTag(ctx, TagLastFailedECS); err != nil {
		t.Fatalf("deleting an unset tag: %v", err)
	}
	tags, err := s.Tags(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tag := range tags {
		got = append(got, tag.Name+"="+tag.Value)
		if tag.UpdatedAt.Before(before.Add(-time.Second)) || tag.UpdatedAt.After(time.Now().Add(time.Second)) {
			t.Errorf("%s updated at %v, not now", tag.Name, tag.UpdatedAt)
		}
	}
	want := []string{"last_build_ecs=0123abcd", "last_running_ecs=0123abcd"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Tags = %v, want %v", got, want)
	}
	for _, bad := range []string{"", "..", "a/b", "name with space", strings.Repeat("x", 256)} {
		if err := s.SetTag(ctx, bad, "x"); err == nil {
			t.Errorf("SetTag(%q) accepted a name that is no file name", bad)
		}
	}
}

// TestRuns: runs read back newest first, a run still going without an end, and
// SaveRun refuses what it cannot store.
func TestRuns(t *testing.T) {
	s, _ := openSingle(t)
	ctx := deadline(t, time.Minute)

	first := &Run{Started: at(0), Ended: at(3), Result: ResultFailed, Error: "phase storage: no disk"}
	first.AddPhase("discover", at(0), at(1), ResultUnchanged, nil)
	first.AddPhase("storage", at(1), at(2), ResultOK, errors.New("no disk"))
	second := &Run{Started: at(10)}
	for _, r := range []*Run{first, second} {
		if err := s.SaveRun(ctx, r); err != nil {
			t.Fatal(err)
		}
	}

	runs, err := s.Runs(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []Run{*second, *first}; !reflect.DeepEqual(runs, want) {
		t.Fatalf("Runs =\n%+v\nwant\n%+v", runs, want)
	}
	if runs[1].Phases[1].Result != ResultFailed || runs[1].Phases[1].Error != "no disk" {
		t.Fatalf("failed phase read back as %+v", runs[1].Phases[1])
	}
	if runs, err := s.Runs(ctx, 1); err != nil || len(runs) != 1 || runs[0].ID != second.ID {
		t.Fatalf("Runs(1) = %+v, %v; want only the newest run", runs, err)
	}

	for name, bad := range map[string]*Run{
		"a missing run":          {ID: 999, Started: at(20)},
		"an invalid run result":  {Started: at(20), Result: "maybe"},
		"an invalid phase":       {Started: at(20), Phases: []Phase{{Name: "x", Result: "maybe"}}},
		"a phase without a name": {Started: at(20), Phases: []Phase{{Result: ResultOK}}},
	} {
		if err := s.SaveRun(ctx, bad); err == nil {
			t.Errorf("SaveRun accepted %s", name)
		}
	}
	if runs, err := s.Runs(ctx, 0); err != nil || len(runs) != 2 {
		t.Fatalf("%d runs after refused saves, %v; want 2", len(runs), err)
	}
}

// TestSaveRun is the agent's path: phases run before storage exists are kept in a
// Run value and written in one go once the store is open.
func TestSaveRun(t *testing.T) {
	run := &Run{Started: at(0)}
	run.AddPhase("discover", at(0), at(1), ResultOK, nil)
	run.AddPhase("activate", at(1), at(2), ResultUnchanged, nil)
	run.AddPhase("storage", at(2), at(3), ResultOK, nil)

	s, _ := openSingle(t)
	ctx := deadline(t, time.Minute)
	if err := s.SaveRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	if run.ID == 0 {
		t.Fatal("SaveRun left the run without an id")
	}
	// The run is saved again after later phases and at its end, which the agent
	// records in the Run itself.
	id := run.ID
	run.AddPhase("state", at(3), at(4), ResultOK, nil)
	if err := s.SaveRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	p := run.AddPhase("prepare", at(4), at(5), ResultOK, errors.New("render nginx.conf: template: bad"))
	run.Ended, run.Result, run.Error = at(6), ResultFailed, "phase prepare: "+p.Error
	if err := s.SaveRun(ctx, run); err != nil {
		t.Fatal(err)
	}
	if run.ID != id {
		t.Fatalf("saving again changed the id from %d to %d", id, run.ID)
	}
	// A copy without the id, as after a lost commit reply, lands on the same run.
	retried := *run
	retried.ID = 0
	if err := s.SaveRun(ctx, &retried); err != nil || retried.ID != id {
		t.Fatalf("retried save: id %d, %v; want %d", retried.ID, err, id)
	}

	runs, err := s.Runs(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || !reflect.DeepEqual(runs[0], *run) {
		t.Fatalf("Runs =\n%+v\nwant\n%+v", runs, *run)
	}
	if runs[0].Result != ResultFailed || runs[0].Error != "phase prepare: render nginx.conf: template: bad" {
		t.Fatalf("run result %q %q; want the failed phase", runs[0].Result, runs[0].Error)
	}
}

// TestConcurrentWrites: goroutines of the agent may write at the same time without
// coordinating (dqlite itself would refuse all but one with "database is locked").
func TestConcurrentWrites(t *testing.T) {
	s, _ := openSingle(t)
	ctx := deadline(t, time.Minute)
	const writers = 8
	errs := make(chan error, writers)
	for i := range writers {
		go func() {
			run := &Run{Started: at(i)}
			run.AddPhase("discover", at(i), at(i+1), ResultOK, nil)
			run.Ended, run.Result = at(i+1), ResultOK
			errs <- errors.Join(s.SetTag(ctx, fmt.Sprintf("tag%d", i), "v"), s.SaveRun(ctx, run))
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	tags, err := s.Tags(ctx)
	if err != nil || len(tags) != writers {
		t.Fatalf("%d tags, %v; want %d", len(tags), err, writers)
	}
	runs, err := s.Runs(ctx, 0)
	if err != nil || len(runs) != writers {
		t.Fatalf("%d runs, %v; want %d", len(runs), err, writers)
	}
}

// TestReopen shows the state survives a restart of the node and the schema is not
// migrated twice, and that a store written by a newer agent is refused.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	addr := testtool.FreeAddress(t)
	ctx := deadline(t, time.Minute)
	s, err := Open(ctx, dir, Options{Address: addr, Logger: testLogger})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetTag(ctx, "last_migration_ecs", "feed"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if _, err := Open(ctx, dir, Options{Address: testtool.FreeAddress(t), Logger: testLogger}); err == nil ||
		!strings.Contains(err.Error(), "does not match") {
		t.Fatalf("reopening on another address: %v; want a mismatch error", err)
	}

	s, err = Open(ctx, dir, Options{Address: addr, Logger: testLogger})
	if err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.Tag(ctx, "last_migration_ecs"); err != nil || !ok || v != "feed" {
		t.Fatalf("after reopen: %q %v %v", v, ok, err)
	}
	var version int
	if err := s.db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version); err != nil || version != len(migrations) {
		t.Fatalf("schema version %d, %v; want %d", version, err, len(migrations))
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE schema_version SET version = ?`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, dir, Options{Address: addr, Logger: testLogger}); err == nil ||
		!strings.Contains(err.Error(), "newer") {
		t.Fatalf("opening a newer schema: %v; want a refusal", err)
	}
}

// BenchmarkOpenAndSaveRun is one boot's worth of store work: start a fresh node and
// write a run of the agent's seven phases. It also reports the two parts: open-ns
// (node ready, schema created) and save-ns (SaveRun).
func BenchmarkOpenAndSaveRun(b *testing.B) {
	phases := []string{"discover", "activate", "storage", "state", "prepare", "start", "verify"}
	var opening, saving time.Duration
	for b.Loop() {
		dir := b.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		start := time.Now()
		s, err := Open(ctx, dir, Options{Address: testtool.FreeAddress(b), Logger: testLogger})
		if err != nil {
			b.Fatal(err)
		}
		opening += time.Since(start)
		run := &Run{Started: start}
		for i, name := range phases {
			run.AddPhase(name, start.Add(time.Duration(i)*time.Second), start.Add(time.Duration(i+1)*time.Second), ResultOK, nil)
		}
		run.Ended, run.Result = start.Add(8*time.Second), ResultOK
		saveStart := time.Now()
		if err := s.SaveRun(ctx, run); err != nil {
			b.Fatal(err)
		}
		saving += time.Since(saveStart)
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		cancel()
	}
	b.ReportMetric(float64(opening.Nanoseconds())/float64(b.N), "open-ns/op")
	b.ReportMetric(float64(saving.Nanoseconds())/float64(b.N), "save-ns/op")
}
