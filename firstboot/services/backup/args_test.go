package backup

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/env"
)

func TestShellWords(t *testing.T) {
	for in, want := range map[string][]string{
		"":                                  nil,
		"  --volsize 25\t--num-retries=3\n": {"--volsize", "25", "--num-retries=3"},
		`--ssh-options='-oIdentityFile=/root/.ssh/backup key'`: {"--ssh-options=-oIdentityFile=/root/.ssh/backup key"},
		`--ssh-options="-o IdentityFile=\"x\" \$ \\"`:          {`--ssh-options=-o IdentityFile="x" $ \`},
		`"a b"'c d'e\ f`:                     {"a bc de f"},
		`"\n stays"`:                         {`\n stays`},
		`--exclude '**/cache' --name ''`:     {"--exclude", "**/cache", "--name", ""},
		`--s3-endpoint-url https://s3.local`: {"--s3-endpoint-url", "https://s3.local"},
	} {
		got, err := shellWords(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("shellWords(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{`'open`, `"open`, `end\`, `a; rm -rf /`, `$HOME`, "`id`", `"$HOME"`, "a|b", "a > f"} {
		if got, err := shellWords(in); err == nil {
			t.Errorf("shellWords(%q) = %q, want an error", in, got)
		}
	}
}

func TestOtherActions(t *testing.T) {
	in := []string{"--volsize", "25", "--num-retries=3", "--exclude=/x", "--include", "/y", "--asynchronous-upload", "--ssh-options", "-oPort=2222", "--full-if-older-than", "1M"}
	want := []string{"--num-retries=3", "--ssh-options", "-oPort=2222"}
	if got := otherActions(in); !slices.Equal(got, want) {
		t.Errorf("otherActions = %q, want %q", got, want)
	}
}

func TestSplitURL(t *testing.T) {
	for in, want := range map[string][2]string{
		"file:///volatile/ecs-backup-test/":       {"file:///volatile/ecs-backup-test/", ""},
		"sftp://backup@host.example//srv/ecs":     {"sftp://backup@host.example//srv/ecs", ""},
		"ftps://backup:s%3Ac%20ret@host:2121/ecs": {"ftps://backup@host:2121/ecs", "s:c ret"},
		"s3://s3.example/bucket/ecs":              {"s3://s3.example/bucket/ecs", ""},
	} {
		target, pw, err := splitURL(in)
		if err != nil || target != want[0] || pw != want[1] {
			t.Errorf("splitURL(%q) = %q, %q, %v; want %q", in, target, pw, err, want)
		}
	}
}

func TestStat(t *testing.T) {
	out := "Last full backup date: none\n--------------[ Backup Statistics ]--------------\nSourceFileSize 16387 (16.0 KB)\nTotalDestinationSizeChange 536 (536 bytes)\nErrors 0\n"
	if got := stat(out, "TotalDestinationSizeChange"); got != 536 {
		t.Errorf("TotalDestinationSizeChange = %d", got)
	}
	if got := stat(out, "SourceFileSize"); got != 16387 {
		t.Errorf("SourceFileSize = %d", got)
	}
	if got := stat("--no-print-statistics gave nothing", "SourceFileSize"); got != -1 {
		t.Errorf("SourceFileSize without statistics = %d", got)
	}
}

func TestLastSet(t *testing.T) {
	dir := t.TempDir()
	names := []string{
		"duplicity-full.20261101T223000Z.manifest",
		"duplicity-full-signatures.20261101T223000Z.sigtar.gz",
		"duplicity-inc.20261101T223000Z.to.20261102T223000Z.manifest",
		"duplicity-new-signatures.20261101T223000Z.to.20261102T223000Z.sigtar.gz",
	}
	for _, n := range names {
		os.WriteFile(filepath.Join(dir, n), nil, 0o600)
	}
	// The part of a manifest that lists volumes, as duplicity writes it.
	os.WriteFile(filepath.Join(dir, "duplicity-inc.20261101T223000Z.to.20261102T223000Z.manifest"),
		[]byte("Hostname ecs\nLocaldir /data\nVolume 1:\n    StartingPath   .\n    EndingPath     ecs-pgdump\nVolume 2:\n    StartingPath   ecs-pgdump\n    EndingPath     ecs-storage-vault/x\n"), 0o600)
	if got, volumes := lastSet(dir); got != "incremental" || volumes != 2 {
		t.Errorf("after an incremental of two volumes: %q, %d volumes", got, volumes)
	}
	os.WriteFile(filepath.Join(dir, "duplicity-full.20261103T223000Z.manifest"), nil, 0o600)
	os.WriteFile(filepath.Join(dir, "duplicity-inc.20261102T223000Z.to.20261104T223000Z.manifest.part"), nil, 0o600)
	if got, _ := lastSet(dir); got != "full" {
		t.Errorf("after a full one (and a partial incremental): %q", got)
	}
	if got, volumes := lastSet(filepath.Join(dir, "none")); got != "" || volumes != -1 {
		t.Errorf("without a cache: %q, %d volumes", got, volumes)
	}
}

// TestMountCommand checks that a cifs password, in either spelling, reaches mount
// only through a 0600 credentials file, never an argument, and that other types
// refuse a password in their options.
func TestMountCommand(t *testing.T) {
	m, out := newMachine(t)
	const secret = "pa ss;wörd=%x"
	for _, options := range []string{
		"user=ecs%" + secret + ",vers=3.0,domain=WG,uid=0",
		"vers=3.0,username=ecs,password=" + secret + ",uid=0,dom=WG",
	} {
		mt := env.BackupMount{Type: "cifs", Source: "//10.0.0.1/backup", Target: "/mnt/appliance-backup-mount", Options: options}
		cmd, done, err := mountCommand(m, mt)
		if err != nil {
			t.Fatal(err)
		}
		cred := m.Path(CredentialsPath)
		want := []string{"-t", "cifs", "-o", "vers=3.0,uid=0,credentials=" + cred, "//10.0.0.1/backup", m.Path("/mnt/appliance-backup-mount")}
		if cmd.Name != "mount" || !slices.Equal(cmd.Args, want) || cmd.Stdin != nil || cmd.Env != nil {
			t.Errorf("mount command %s %q, want %q", cmd.Name, cmd.Args, want)
		}
		for _, a := range cmd.Args {
			if strings.Contains(a, "pa ss") {
				t.Errorf("an argument carries the password: %q", a)
			}
		}
		fi, err := os.Stat(cred)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("credentials file: %v, %v", fi, err)
		}
		if got, _ := os.ReadFile(cred); string(got) != "username=ecs\npassword="+secret+"\ndomain=WG\n" {
			t.Errorf("credentials file:\n%s", got)
		}
		done()
		if _, err := os.Stat(cred); !os.IsNotExist(err) {
			t.Errorf("the credentials file outlives the mount: %v", err)
		}
	}

	mt := env.BackupMount{Type: "cifs", Source: "//10.0.0.1/backup", Target: "/mnt/b", Options: "guest,vers=3.0,username=ecs"}
	cmd, done, err := mountCommand(m, mt)
	if err != nil {
		t.Fatal(err)
	}
	done()
	if want := []string{"-t", "cifs", "-o", "guest,vers=3.0,username=ecs", "//10.0.0.1/backup", m.Path("/mnt/b")}; !slices.Equal(cmd.Args, want) {
		t.Errorf("mount without a password %q, want %q", cmd.Args, want)
	}
	nfs := env.BackupMount{Type: "nfs4", Source: "10.0.0.1:/backup", Target: "/mnt/b"}
	if cmd, _, err := mountCommand(m, nfs); err != nil || !slices.Equal(cmd.Args, []string{"-t", "nfs4", "10.0.0.1:/backup", m.Path("/mnt/b")}) {
		t.Errorf("nfs mount %q, %v", cmd.Args, err)
	}
	nfs.Options = "vers=4,password=" + secret
	if _, _, err := mountCommand(m, nfs); err == nil || strings.Contains(err.Error(), "pa ss") {
		t.Errorf("an nfs mount with a password: %v", err)
	}
	noSecrets(t, out.String(), "pa ss")
}
