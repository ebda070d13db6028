package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// backupRun is what the SeaBIOS VM's backup left for the OVMF VM to restore: the
// disk it went to, the env's backup section (the same key), and fingerprints of the
// data backed up.
type backupRun struct {
	disk    string // raw, ext4 labelled ecs-backup
	section string // "  backup:\n…" of the env
	vault   string // sha256sum of every vault file, sorted
	rows    string // sha256 of the database's data
}

// newBackupDisk makes the ext4 disk a backup goes to (mounted through
// appliance.backup.mount, by label, whatever the VM calls it).
func newBackupDisk(t testing.TB, dir string) string {
	disk := filepath.Join(dir, "backup.raw")
	run(t, "qemu-img", "create", "-f", "raw", disk, "1G")
	run(t, "mkfs.ext4", "-q", "-L", "ecs-backup", disk)
	return disk
}

// withBackupDisk points appliance.backup at that disk.
func withBackupDisk(t testing.TB, s string) string {
	return replace(t, s, "    url: file:///volatile/ecs-backup-test/\n",
		"    url: file:///mnt/ecs-backup\n    mount:\n      type: ext4\n      source: /dev/disk/by-label/ecs-backup\n      target: /mnt/ecs-backup\n")
}

// backupSection is the backup section (up to the ecs: section) of an env's text.
func backupSection(t testing.TB, env string) string {
	i, j := strings.Index(env, "  backup:\n"), strings.Index(env, "\necs:\n")
	if i < 0 || j < i {
		t.Fatal("env.yml has no backup section before ecs:")
	}
	return env[i : j+1]
}

// fingerprints are the vault's files and the database's data, as sha256 sums.
func fingerprints(t testing.TB, b *booted) (vault, rows string) {
	vault = b.ssh(t, "cd /data/ecs-storage-vault && find . -type f -print0 | sort -z | xargs -0 -r sha256sum")
	// pg_dump writes a random key into its \restrict and \unrestrict lines (since
	// PostgreSQL 17.6), and comments with times: neither is data.
	rows = b.ssh(t, "runuser -u postgres -- pg_dump --data-only --no-owner --no-privileges ecs | grep -v -e '^--' -e '^.restrict ' -e '^.unrestrict ' | sha256sum")
	return vault, rows
}

// checkBackup: a file in the vault and the app's rows go, through the backup unit the
// timer starts, to the backup disk; the run is in the state and the metrics. It
// stops the application (the last check of the VM).
func checkBackup(t testing.TB, b *booted, envPath, disk string) *backupRun {
	// The app writes its counters all the time: stopped, the data backed up is the
	// data compared after the restore.
	b.ssh(t, "systemctl stop appliance")
	b.ssh(t, "install -d -o 1000 -g 1000 /data/ecs-storage-vault/e2e && head -c 300000 /dev/urandom > /data/ecs-storage-vault/e2e/document.bin && echo 'Votum: zustimmend' > '/data/ecs-storage-vault/e2e/Prüfung ä.txt' && chown -R 1000:1000 /data/ecs-storage-vault/e2e")
	start := time.Now()
	if out, err := b.trySSH("systemctl start appliance-backup.service"); err != nil {
		diag, _ := b.trySSH("journalctl --no-pager -u appliance-backup.service -n 40")
		t.Fatalf("the backup unit failed: %v\n%s\n%s", err, out, diag)
	}
	t.Logf("backup (appliance-backup.service) in %s", time.Since(start).Round(time.Second))
	t.Logf("backup: %s", strings.TrimSpace(b.ssh(t, "journalctl --no-pager -o cat -u appliance-backup.service | grep 'backup:' | tail -1")))
	if prom := b.ssh(t, "cat /app/etc/metric_import/backup.prom"); !strings.Contains(prom, "backup_last_start_time ") {
		t.Errorf("backup.prom:\n%s", prom)
	}
	if st := b.ssh(t, "appliance-agent state"); !strings.Contains(st, "backup_last_start") {
		t.Errorf("the backup is not in the state:\n%s", st)
	}
	if mounted := b.ssh(t, "findmnt -n /mnt/ecs-backup || true"); strings.TrimSpace(mounted) != "" {
		t.Errorf("the backup disk is still mounted: %s", mounted)
	}
	env, err := os.ReadFile(envPath)
	if err != nil {
		t.Fatal(err)
	}
	run := &backupRun{disk: disk, section: backupSection(t, string(env))}
	run.vault, run.rows = fingerprints(t, b)
	if !strings.Contains(run.vault, "document.bin") {
		t.Errorf("the vault's files:\n%s", run.vault)
	}
	return run
}

// checkRestore: another appliance with the same backup key and a blank vault
// restores the backup (its boot made an empty database, which is kept renamed), and
// holds the same files and rows.
func checkRestore(t testing.TB, b *booted, run *backupRun) {
	if out, err := b.trySSH("appliance-agent restore"); err == nil || !strings.Contains(out, "--yes-i-am-sure") {
		t.Errorf("restore without --yes-i-am-sure: %v\n%s", err, out)
	}
	start := time.Now()
	out, err := b.trySSH("appliance-agent restore --yes-i-am-sure")
	t.Logf("restore in %s:\n%s", time.Since(start).Round(time.Second), out)
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	vault, rows := fingerprints(t, b)
	if vault != run.vault {
		t.Errorf("the restored vault differs:\n%s\nwant\n%s", vault, run.vault)
	}
	if rows != run.rows {
		t.Errorf("the restored database's data differs")
	}
	if out, err := b.trySSH("appliance-agent restore --yes-i-am-sure"); err == nil || !strings.Contains(out, "/data/ecs-storage-vault holds files") {
		t.Errorf("a second restore over the restored vault: %v\n%s", err, out)
	}
}
