package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services/app"
	"github.com/ethikkom/ecs-appliance/firstboot/services/postgresql"
)

// RestoreOptions change what Restore does.
type RestoreOptions struct {
	// OnlyFiles restores the directories and leaves the database alone (the
	// original's --only-restore); its absence is then not required either.
	OnlyFiles bool
}

// RestoreResult is what a restore did.
type RestoreResult struct {
	Start    time.Time
	Duration time.Duration
	// Layout is where the backup keeps the directories: "" at its top (source /data,
	// the original's duply profile and Run), "data" below data/ (source /).
	Layout string
	// Restored are the directories restored; Database whether the database was
	// made from the dump.
	Restored []string
	Database bool
	// Kept is the name the database that was there before now has ("" when there
	// was none).
	Kept string
}

// CheckRestore says why a restore would not run, or nil: VaultDir and DumpDir must
// hold no files (empty directories are fine). The database is no reason to refuse:
// every boot makes ecs.database, and ECS migrates it, so a fresh appliance has one;
// a restore keeps whatever is there under another name (RestoreResult.Kept), never
// dropping it. The appliance should be stopped: it writes all three.
func CheckRestore(m *machine.Machine) error {
	for _, d := range []string{VaultDir, DumpDir} {
		if f := firstFile(m.Path(d)); f != "" {
			rel, _ := filepath.Rel(m.Path(d), f)
			return fmt.Errorf("%s holds files (%s, …): a restore only fills empty directories; move them away first", d, rel)
		}
	}
	return nil
}

// Restore restores VaultDir and DumpDir from the newest backup at
// appliance.backup.url, made by Run or by the original appliance, and then the
// database from DumpFile, as the app's restore does (objects owned by the app role).
// It runs only where CheckRestore finds nothing in its way.
func Restore(ctx context.Context, m *machine.Machine, e *env.Env, opts RestoreOptions) (res RestoreResult, err error) {
	res.Start = time.Now()
	defer func() { res.Duration = time.Since(res.Start) }()
	release, err := lock(m)
	if err != nil {
		return res, err
	}
	defer release()
	if err := CheckRestore(m); err != nil {
		return res, err
	}
	j, end, err := begin(ctx, m, e)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, end()) }()

	// What a failed earlier restore left here is ours; duplicity wants a new directory.
	staging := m.Path(restoreDir)
	if err := os.RemoveAll(staging); err != nil {
		return res, err
	}
	defer os.RemoveAll(staging)
	if _, err := j.duplicity(ctx, j.restoreArgs(staging)); err != nil {
		return res, fmt.Errorf("duplicity restore from %s: %w", j.target, err)
	}
	if res.Layout, err = layout(staging); err != nil {
		return res, err
	}
	for _, name := range saved {
		from, to := filepath.Join(staging, res.Layout, name), filepath.Join(DataDir, name)
		if _, err := os.Lstat(from); errors.Is(err, fs.ErrNotExist) {
			m.Out.Detail("the backup holds no %s", name)
			continue
		}
		if err := replace(m.Path(to), from); err != nil {
			return res, fmt.Errorf("moving the restored %s into place: %w", to, err)
		}
		res.Restored = append(res.Restored, to)
		m.Out.Detail("restored %s from %s", to, j.target)
	}
	if opts.OnlyFiles {
		return res, nil
	}
	if _, err := os.Stat(m.Path(DumpFile)); err != nil {
		return res, fmt.Errorf("the backup holds no database dump %s; the files are restored, the database is not", DumpFile)
	}
	if res.Kept, err = restoreDatabase(ctx, m, e); err != nil {
		return res, err
	}
	res.Database = true
	m.Out.Detail("restored database %s from %s", e.ECS.Database, DumpFile)
	if res.Kept != "" {
		m.Out.Detail("the database that was there is kept as %s", res.Kept)
	}
	return res, nil
}

// layout finds the directories in what duplicity restored: at its top for a source
// of /data, under data/ for a source of /.
func layout(staging string) (string, error) {
	for _, l := range []string{"", "data"} {
		for _, name := range saved {
			if fi, err := os.Stat(filepath.Join(staging, l, name)); err == nil && fi.IsDir() {
				return l, nil
			}
		}
	}
	return "", fmt.Errorf("the backup holds neither %s nor %s, at its top or under data/: not a backup of an appliance", saved[0], saved[1])
}

// replace puts the directory from in the place of the directory at to, which may
// hold empty directories but no files (checked again: nothing is lost here).
func replace(to, from string) error {
	if f := firstFile(to); f != "" {
		return fmt.Errorf("%s holds files now", to)
	}
	if err := os.RemoveAll(to); err != nil {
		return err
	}
	return os.Rename(from, to)
}

// firstFile is the first thing under dir that is not a directory, "" when there is
// none (or no dir).
func firstFile(dir string) string {
	found := ""
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			found = p
			return fs.SkipAll
		}
		return nil
	})
	return found
}

// restoreDatabase makes ecs.database from DumpFile through the app's restore,
// which renames the database it replaces; that one is returned, or dropped when it is
// the empty one made here. A failed load leaves the database as it was.
func restoreDatabase(ctx context.Context, m *machine.Machine, e *env.Env) (string, error) {
	db := e.ECS.Database
	made, err := postgresql.EnsureDatabase(ctx, m, db)
	if err != nil {
		return "", err
	}
	kept, err := (&app.Lifecycle{M: m, Env: e}).Restore(ctx, DumpFile)
	if err != nil {
		err = fmt.Errorf("restoring database %s from %s: %w", db, DumpFile, err)
		if kept != "" {
			// Put the one that was there back in its place.
			cleanup := context.WithoutCancel(ctx)
			_, derr := postgresql.Query(cleanup, m, "", "DROP DATABASE IF EXISTS "+ident(db))
			if derr == nil {
				_, derr = postgresql.Query(cleanup, m, "", "ALTER DATABASE "+ident(kept)+" RENAME TO "+ident(db))
			}
			err = errors.Join(err, derr)
		}
		return "", err
	}
	if made {
		_, err := postgresql.Query(context.WithoutCancel(ctx), m, "", "DROP DATABASE "+ident(kept))
		return "", err
	}
	return kept, nil
}

// ident quotes an SQL identifier: ecs.database is whatever env.yml says.
func ident(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
