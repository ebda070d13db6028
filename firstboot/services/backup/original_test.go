package backup

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services/app"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// TestRestoresOriginalBackups restores backups made as the original appliance made
// them: by duply with its profile (source /data, the two directories included,
// encrypted to and signed by the key, --trust-model always, --full-if-older-than 2M,
// --exclude-other-filesystems), and by duplicity with a source of / (the
// directories below data/ in the backup). The dump in them is the original's
// format (pg_dump custom -Z0 | gzip --rsyncable), as app's Dump writes it.
func TestRestoresOriginalBackups(t *testing.T) {
	needTools(t)
	for _, tc := range []struct {
		name, layout string
		backup       func(t *testing.T, m *machine.Machine, home, fpr, target string)
	}{
		{"duply profile, source /data", "", duply},
		{"duplicity, source /", "data", sourceRoot},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			target := t.TempDir()
			m1, _ := newMachine(t)
			e := testEnv(t, target)
			fillVault(t, m1.Path(VaultDir))
			database(t, m1, e)
			if _, err := (&app.Lifecycle{M: m1, Env: e}).Dump(ctx, "ecs"); err != nil {
				t.Fatal(err)
			}
			ents, err := openpgp.ReadArmoredKeyRing(strings.NewReader(e.Appliance.Backup.Encrypt))
			if err != nil {
				t.Fatal(err)
			}
			tc.backup(t, m1, keyring(t, e), fmt.Sprintf("%X", ents[0].PrimaryKey.Fingerprint), target)
			dropDatabase(t, m1, e)

			m2, out := newMachine(t)
			res, err := Restore(ctx, m2, e, RestoreOptions{})
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if res.Layout != tc.layout || !res.Database {
				t.Errorf("restore: %+v, want layout %q and the database", res, tc.layout)
			}
			sameTree(t, m1.Path(VaultDir), m2.Path(VaultDir))
			sameTree(t, m1.Path(DumpDir), m2.Path(DumpDir))
			checkDatabase(t, m2, e)
		})
	}
}

// duply backs up with the original's duply profile (salt/appliance/backup:
// duply.conf.template, prepare-backup.sh and the exclude file), its paths moved
// into the machine's tree and its cache out of /root.
func duply(t *testing.T, m *machine.Machine, home, fpr, target string) {
	t.Helper()
	testtool.Require(t, "duply")
	profile := filepath.Join(t.TempDir(), "appliance-backup")
	conf := fmt.Sprintf(`GPG_KEY='%s'
GPG_PW=''
GPG_OPTS='--trust-model always'
VERBOSITY=2
MAX_AGE=4M
MAX_FULLBKP_AGE=2M
DUPL_PARAMS="$DUPL_PARAMS --full-if-older-than $MAX_FULLBKP_AGE "
DUPL_PARAMS="$DUPL_PARAMS --exclude-other-filesystems "
TARGET='file://%s'
SOURCE='%s'
ARCH_DIR='%s'
`, fpr, target, m.Path("/data"), filepath.Join(t.TempDir(), "cache"))
	exclude := fmt.Sprintf("+ %s\n+ %s\n- **\n", m.Path(VaultDir), m.Path(DumpDir))
	if err := os.MkdirAll(profile, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"conf": conf, "exclude": exclude} {
		if err := os.WriteFile(filepath.Join(profile, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run(t, home, "duply", profile, "backup")
}

// sourceRoot backs up as a profile with SOURCE='/' and the same includes would.
func sourceRoot(t *testing.T, m *machine.Machine, home, fpr, target string) {
	t.Helper()
	run(t, home, "duplicity", "--archive-dir", t.TempDir(), "--gpg-options=--trust-model=always",
		"--encrypt-key", fpr, "--include", m.Path(VaultDir), "--include", m.Path(DumpDir), "--exclude", "**",
		m.Root(), "file://"+target)
}

func run(t *testing.T, home, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + t.TempDir(), "GNUPGHOME=" + home, "PASSPHRASE="}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
}
