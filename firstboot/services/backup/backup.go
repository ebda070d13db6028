// Package backup is the appliance's backup and its restore: a dump of the ECS
// database in ECS's dump format, then Debian's duplicity of the document vault and
// the dump directory, encrypted to appliance.backup.encrypt, to appliance.backup.url
// (with appliance.backup.mount mounted around it); and the way back onto a machine
// whose vault, dump directory and database are empty.
//
// Backups keep the layout of the original appliance's duply profile (source /data,
// only ecs-storage-vault and ecs-pgdump included), so Restore reads both its own
// backups and the original's the same way.
package backup

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services/app"
)

// Paths on the machine.
const (
	DataDir  = "/data"
	VaultDir = DataDir + "/ecs-storage-vault"
	DumpDir  = app.DumpDir
	// DumpName is the dump's name in DumpDir (DumpFile), the original's, whatever
	// ecs.database is: a restore finds it under the one name.
	DumpName = "ecs"
	DumpFile = DumpDir + "/" + DumpName + ".pgdump.gz"
	// ArchiveDir is duplicity's cache of the backup's metadata: with it an
	// incremental backup needs nothing from the target but the upload.
	ArchiveDir = "/volatile/duplicity"
	// TempDir holds the volumes duplicity builds before it uploads them, on disk
	// rather than in a /tmp that may be memory.
	TempDir = "/volatile/duplicity-tmp"
	// GPGHome is the GnuPG home duplicity's gpg uses, made for one run and removed
	// after it.
	GPGHome = "/run/appliance/backup-gnupg"
	// CredentialsPath is the mount's credentials file while mount reads it.
	CredentialsPath = "/run/appliance/backup-mount.credentials"
	// LockPath keeps two backups, or a backup and a restore, from running at once.
	LockPath = "/run/appliance/backup.lock"
	// restoreDir receives what duplicity restores, on /data so that the directories
	// move into place by a rename.
	restoreDir = DataDir + "/ecs-restore"
)

// The directories a backup holds, by name under DataDir.
var saved = []string{filepath.Base(VaultDir), filepath.Base(DumpDir)}

// Result is what a backup did, for the caller's state and metrics.
type Result struct {
	Start    time.Time
	Duration time.Duration
	// Kind is "full" or "incremental" (the set duplicity wrote), "" when unknown.
	Kind string
	// Written is what the target grew by (duplicity's TotalDestinationSizeChange),
	// Source the size of the files backed up (SourceFileSize); -1 when unknown.
	Written, Source int64
	// Stored is the size of everything at a file:// target after the run, -1 for
	// other targets.
	Stored int64
	// Volumes is how many volumes (of --volsize) the set written has, -1 when unknown.
	Volumes int
	// Warnings are failures that did not fail the backup (removing old chains).
	Warnings []string
}

// Run backs up: it dumps ecs.database to DumpFile, runs duplicity of VaultDir and
// DumpDir to appliance.backup.url (a new full chain when the last is older than two
// months) and then removes all but the last two full chains. An empty vault is
// backed up as it is.
func Run(ctx context.Context, m *machine.Machine, e *env.Env) (res Result, err error) {
	res = Result{Start: time.Now(), Written: -1, Source: -1, Stored: -1}
	defer func() { res.Duration = time.Since(res.Start) }()
	release, err := lock(m)
	if err != nil {
		return res, err
	}
	defer release()
	for _, d := range []string{VaultDir, DumpDir} {
		if fi, err := os.Stat(m.Path(d)); err != nil || !fi.IsDir() {
			return res, fmt.Errorf("%s is not a directory: storage is not set up (appliance-agent boot makes it)", d)
		}
	}
	j, end, err := begin(ctx, m, e)
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, end()) }()

	dump, err := (&app.Lifecycle{M: m, Env: e}).Dump(ctx, DumpName)
	if err != nil {
		return res, fmt.Errorf("dump of database %s: %w", e.ECS.Database, err)
	}
	m.Out.Detail("dumped database %s to %s", e.ECS.Database, dump)
	out, err := j.duplicity(ctx, j.backupArgs())
	if err != nil {
		return res, fmt.Errorf("duplicity backup to %s: %w", j.target, err)
	}
	res.Written, res.Source = stat(out, "TotalDestinationSizeChange"), stat(out, "SourceFileSize")
	res.Kind, res.Volumes = lastSet(j.cache())
	m.Out.Detail("backed up %s and %s to %s (%s, %s written)", VaultDir, DumpDir, j.target, kindName(res.Kind), Size(res.Written))

	if _, err := j.duplicity(ctx, j.retentionArgs()); err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("removing all but the last %d full backups at %s: %v", keepFull, j.target, err))
	}
	if dir, ok := j.localTarget(); ok {
		res.Stored = dirSize(dir)
	}
	return res, nil
}

// begin makes the job, mounts its target and opens its GnuPG home; end undoes both.
func begin(ctx context.Context, m *machine.Machine, e *env.Env) (j *job, end func() error, err error) {
	if j, err = newJob(m, e); err != nil {
		return nil, nil, err
	}
	unmount, err := mountTarget(ctx, m, e.Appliance.Backup.Mount)
	if err != nil {
		return nil, nil, err
	}
	if err := j.open(ctx); err != nil {
		return nil, nil, errors.Join(err, unmount())
	}
	return j, func() error { j.close(ctx); return unmount() }, nil
}

// lock takes LockPath, or says that another backup or restore runs.
func lock(m *machine.Machine) (func(), error) {
	p := m.Path(LockPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, errors.New("another backup or restore runs; try again when it has ended")
	}
	return func() { f.Close() }, nil // closing releases the lock
}

// dirSize is the size of the regular files under dir.
func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func kindName(kind string) string {
	if kind == "" {
		return "backup set of unknown kind"
	}
	return kind
}

// Size says n bytes in binary units, or "unknown size" for -1.
func Size(n int64) string {
	if n < 0 {
		return "unknown size"
	}
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
