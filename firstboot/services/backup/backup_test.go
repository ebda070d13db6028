package backup

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services/postgresql"
)

// TestBackupRestore backs up a vault and a database with real duplicity, gpg and
// PostgreSQL (full, then incremental, then full chains beyond the two kept),
// restores them into a fresh tree, and checks that the restore refuses to run over
// data.
func TestBackupRestore(t *testing.T) {
	needTools(t)
	ctx := context.Background()
	target := t.TempDir()
	m1, out := newMachine(t)
	e := testEnv(t, target)
	fillVault(t, m1.Path(VaultDir))
	database(t, m1, e)

	first, err := Run(ctx, m1, e)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if first.Kind != "full" || first.Written <= 0 || first.Source <= 300<<10 || first.Stored <= 0 || len(first.Warnings) > 0 {
		t.Errorf("first backup: %+v, want a full one with sizes", first)
	}
	if first.Start.IsZero() || first.Duration <= 0 {
		t.Errorf("first backup: start %v, duration %v", first.Start, first.Duration)
	}
	if fi, err := os.Stat(m1.Path(DumpFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("the dump: %v, %v", fi, err)
	}
	if _, err := os.Stat(m1.Path(GPGHome)); !os.IsNotExist(err) {
		t.Errorf("the GnuPG home with the secret key outlives the backup: %v", err)
	}

	if err := os.WriteFile(m1.Path(VaultDir+"/c1/Prüfbericht Anlage 1.txt"), []byte("Ethikkommission, geändert\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	second, err := Run(ctx, m1, e)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if second.Kind != "incremental" || second.Stored <= first.Stored {
		t.Errorf("second backup: %+v, want an incremental one adding to %d bytes", second, first.Stored)
	}

	// Two more full chains (the env's options override the fixed age): only the
	// newest two of the three are kept.
	e.Appliance.Backup.Options = "--full-if-older-than '1s'"
	for i := range 2 {
		time.Sleep(time.Second) // the chain before must be older than 1s
		r, err := Run(ctx, m1, e)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if r.Kind != "full" || len(r.Warnings) > 0 {
			t.Errorf("backup %d with --full-if-older-than 1s: %+v", i+3, r)
		}
	}
	fulls, _ := filepath.Glob(filepath.Join(target, "duplicity-full.*.manifest.gpg"))
	if len(fulls) != keepFull {
		t.Errorf("full chains at the target: %d, want %d (remove-all-but-n-full)", len(fulls), keepFull)
	}
	e.Appliance.Backup.Options = ""

	t.Run("refuses over files", func(t *testing.T) {
		_, err := Restore(ctx, m1, e, RestoreOptions{})
		if err == nil || !strings.Contains(err.Error(), VaultDir+" holds files") {
			t.Errorf("restore over a full vault: %v", err)
		}
	})
	// A database is there (m1's: both trees share the test's server), as on a fresh
	// appliance, whose boot made one: it is kept under another name, not dropped.
	m2, out2 := newMachine(t)
	res, err := Restore(ctx, m2, e, RestoreOptions{})
	if err != nil {
		t.Fatalf("%v\n%s", err, out2)
	}
	if res.Layout != "" || !res.Database || len(res.Restored) != 2 || !strings.HasPrefix(res.Kept, "ecs_before_restore_") {
		t.Errorf("restore: %+v", res)
	}
	if kept, err := postgresql.Query(ctx, m2, "", "SELECT 1 FROM pg_database WHERE datname = '"+res.Kept+"'"); err != nil || kept != "1" {
		t.Errorf("the database that was there is gone: %q %v", kept, err)
	}
	sameTree(t, m1.Path(VaultDir), m2.Path(VaultDir))
	sameTree(t, m1.Path(DumpDir), m2.Path(DumpDir))
	checkDatabase(t, m2, e)
	if _, err := os.Stat(m2.Path(restoreDir)); !os.IsNotExist(err) {
		t.Errorf("the restore left %s: %v", restoreDir, err)
	}
	noSecrets(t, out.String()+out2.String())
}

// TestEmptyVault backs up a fresh appliance: an empty vault is no reason to fail
// (the original aborted, every day), and restores as the empty directory it was.
func TestEmptyVault(t *testing.T) {
	needTools(t)
	ctx := context.Background()
	m1, out := newMachine(t)
	e := testEnv(t, t.TempDir())
	database(t, m1, e)
	res, err := Run(ctx, m1, e)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if res.Kind != "full" || res.Volumes != 1 {
		t.Errorf("backup of an empty vault (one full set of one volume): %+v", res)
	}
	m2, _ := newMachine(t)
	if _, err := Restore(ctx, m2, e, RestoreOptions{OnlyFiles: true}); err != nil {
		t.Fatal(err)
	}
	sameTree(t, m1.Path(VaultDir), m2.Path(VaultDir))
	sameTree(t, m1.Path(DumpDir), m2.Path(DumpDir))
}

// TestMountAroundBackup mounts appliance.backup.mount (a tmpfs here) for the
// backup and unmounts it after, also when duplicity fails.
func TestMountAroundBackup(t *testing.T) {
	needTools(t)
	ctx := context.Background()
	m, out := newMachine(t)
	e := testEnv(t, "")
	database(t, m, e)
	e.Appliance.Backup.Mount = env.BackupMount{Type: "tmpfs", Source: "tmpfs", Target: "/mnt/appliance-backup-mount", Options: "size=64m,mode=0700"}
	mnt := m.Path(e.Appliance.Backup.Mount.Target)
	e.Appliance.Backup.URL = "file://" + mnt + "/ecs"
	t.Cleanup(func() {
		if mounted(mnt) {
			t.Errorf("%s is still mounted", mnt)
			m.Run(context.Background(), machine.Command{Name: "umount", Args: []string{mnt}})
		}
	})

	res, err := Run(ctx, m, e)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if res.Stored <= 0 {
		t.Errorf("nothing was stored at the mounted target: %+v", res)
	}
	if mounted(mnt) {
		t.Errorf("%s is mounted after the backup", mnt)
	}
	if left, _ := os.ReadDir(mnt); len(left) > 0 {
		t.Errorf("the backup went to the mount point's own directory, not the mount: %v", left)
	}
	if !strings.Contains(out.String(), "mounted tmpfs on /mnt/appliance-backup-mount") || !strings.Contains(out.String(), "unmounted /mnt/appliance-backup-mount") {
		t.Errorf("output:\n%s", out)
	}

	e.Appliance.Backup.Options = "--no-such-option"
	if _, err := Run(ctx, m, e); err == nil {
		t.Error("a backup with an option duplicity rejects succeeded")
	}
	if mounted(mnt) {
		t.Errorf("%s is mounted after the failed backup", mnt)
	}
	if _, err := os.Stat(m.Path(GPGHome)); !os.IsNotExist(err) {
		t.Errorf("the GnuPG home outlives the failed backup: %v", err)
	}
}

// TestBackupNeedsStorage names what is missing on a machine without storage.
func TestBackupNeedsStorage(t *testing.T) {
	m, _ := newMachine(t)
	if err := os.Remove(m.Path(DumpDir)); err != nil {
		t.Fatal(err)
	}
	_, err := Run(context.Background(), m, testEnv(t, t.TempDir()))
	if err == nil || !strings.Contains(err.Error(), DumpDir+" is not a directory") {
		t.Errorf("backup without %s: %v", DumpDir, err)
	}
}

// TestRefusesBadOptions refuses options a shell would have read differently,
// before anything runs, without quoting them.
func TestRefusesBadOptions(t *testing.T) {
	m, out := newMachine(t)
	e := testEnv(t, t.TempDir())
	e.Appliance.Backup.Options = `--ssh-options="-oIdentityFile=$HOME/id"`
	_, err := Run(context.Background(), m, e)
	if err == nil || !strings.Contains(err.Error(), "appliance.backup.options") || strings.Contains(err.Error(), "IdentityFile") {
		t.Errorf("options with $: %v", err)
	}
	if firstFile(m.Path(DumpDir)) != "" || out.Len() > 0 {
		t.Error("a backup with bad options dumped the database")
	}
}
