package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/env-tools/generate"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services/postgresql"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// socketDir and port are where Debian's psql, pg_dump and pg_restore connect by
// default, as the machine's commands run them: the test cluster listens there.
const (
	socketDir = "/var/run/postgresql"
	port      = "5432"
)

// cluster is the package's PostgreSQL cluster, started by the first test that
// needs it and stopped by TestMain.
var cluster struct {
	once            sync.Once
	missing, failed string
	stop            func()
}

func TestMain(m *testing.M) {
	code := m.Run()
	if cluster.stop != nil {
		cluster.stop()
	}
	os.Exit(code)
}

// needTools requires what a backup runs: duplicity with gpg, and the PostgreSQL
// cluster its dump reads.
func needTools(t *testing.T) {
	t.Helper()
	testtool.Require(t, "duplicity", "gpg", "gpgconf", "gzip", "mount", "umount")
	needPostgres(t)
}

// needPostgres starts the host's PostgreSQL server on a cluster in a temporary
// directory, as the postgres user, listening only on socketDir, with the role app
// the postgresql service makes.
func needPostgres(t *testing.T) {
	t.Helper()
	testtool.RequireRoot(t)
	testtool.Require(t, "runuser", "psql", "pg_dump", "pg_restore", "pg_isready", "locale")
	cluster.once.Do(startCluster)
	if cluster.missing != "" {
		testtool.Missing(t, cluster.missing)
	}
	if cluster.failed != "" {
		t.Fatal(cluster.failed)
	}
}

func startCluster() {
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		cluster.missing = "no PostgreSQL server in /usr/lib/postgresql (make test installs it)"
		return
	}
	bin := filepath.Dir(bins[len(bins)-1])
	if fi, err := os.Stat(socketDir); err != nil || !fi.IsDir() {
		cluster.missing = socketDir + " is missing (the postgresql package makes it)"
		return
	}
	pg, err := user.Lookup("postgres")
	if err != nil {
		cluster.missing = "no postgres user (the postgresql package makes it)"
		return
	}
	if out, _ := exec.Command("locale", "-a").Output(); !strings.Contains(string(out), "de_DE.utf8") {
		cluster.missing = "the locale de_DE.UTF-8 (the ECS database's) is not generated (make test generates it)"
		return
	}
	// What is done is undone by TestMain, in reverse, whatever failed.
	var undo []func()
	cluster.stop = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	// Another test process of this package (go test ./... of a second checkout)
	// runs its cluster on the same socket: wait until it has stopped it.
	held, err := os.OpenFile(filepath.Join(os.TempDir(), "ecs-appliance-test-postgres.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		cluster.failed = err.Error()
		return
	}
	undo = append(undo, func() { held.Close() })
	if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX); err != nil {
		cluster.failed = err.Error()
		return
	}
	if exec.Command("pg_isready", "-q", "-h", socketDir, "-p", port).Run() == nil {
		cluster.missing = "a PostgreSQL server listens on " + socketDir + " port " + port + " already; the test runs its own cluster there"
		return
	}
	dir, err := os.MkdirTemp("", "backup-pg-")
	if err != nil {
		cluster.failed = err.Error()
		return
	}
	undo = append(undo, func() { os.RemoveAll(dir) })
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		cluster.failed = err.Error()
		return
	}
	asPostgres := func(name string, args ...string) error {
		cmd := exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", name, err, out)
		}
		return nil
	}
	data := filepath.Join(dir, "data")
	if err := asPostgres(bin+"/initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8"); err != nil {
		cluster.failed = err.Error()
		return
	}
	opts := fmt.Sprintf("-c listen_addresses='' -c unix_socket_directories=%s -c port=%s", socketDir, port)
	if err := asPostgres(bin+"/pg_ctl", "-D", data, "-l", filepath.Join(dir, "log"), "-w", "-o", opts, "start"); err != nil {
		cluster.failed = err.Error()
		return
	}
	undo = append(undo, func() { asPostgres(bin+"/pg_ctl", "-D", data, "-m", "fast", "-w", "stop") })
	if err := asPostgres("psql", "-X", "-q", "-h", socketDir, "-p", port, "-c", "CREATE ROLE app LOGIN"); err != nil {
		cluster.failed = err.Error()
	}
}

var generated struct {
	once sync.Once
	data []byte
	err  error
}

// testEnv is an env.yml as `ecs-env new` makes it (the same backup key), backing
// up to the file:// target.
func testEnv(t *testing.T, target string) *env.Env {
	t.Helper()
	generated.once.Do(func() { generated.data, generated.err = generate.New(generate.Options{Domain: "localhost"}) })
	if generated.err != nil {
		t.Fatal(generated.err)
	}
	e, _, err := env.Parse("env.yml", generated.data)
	if err != nil {
		t.Fatal(err)
	}
	e.Appliance.Backup.URL = "file://" + target
	return e
}

// newMachine is a machine tree with the storage phase's /data directories (the
// vault app's, the dump directory root's and 0700) and /volatile; out is what the
// agent printed.
func newMachine(t *testing.T) (m *machine.Machine, out *bytes.Buffer) {
	t.Helper()
	out = &bytes.Buffer{}
	// Not t.TempDir(): its long name would push gpg-agent's sockets in GPGHome past
	// the 108 bytes a socket path may have.
	root, err := os.MkdirTemp("", "r-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	m, err = machine.New(root, out)
	if err != nil {
		t.Fatal(err)
	}
	mkdir(t, m.Path(VaultDir), 0o755, 1000)
	mkdir(t, m.Path(DumpDir), 0o700, 0)
	mkdir(t, m.Path("/volatile"), 0o755, 0)
	return m, out
}

func mkdir(t *testing.T, p string, mode os.FileMode, owner int) {
	t.Helper()
	if err := os.MkdirAll(p, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		return // owners need root; the tests that check them require it
	}
	if err := os.Lchown(p, owner, owner); err != nil {
		t.Fatal(err)
	}
}

// fillVault puts what a vault has into dir: nested documents owned by the app,
// binary content, an empty file, an empty directory, a symlink, a name with
// spaces and umlauts.
func fillVault(t *testing.T, dir string) {
	t.Helper()
	doc := make([]byte, 300<<10)
	rand.Read(doc)
	files := map[string][]byte{
		"4f/2a/4f2a9c.pdf.gpg":          doc,
		"4f/2a/empty":                   nil,
		"c1/Prüfbericht Anlage 1.txt":   []byte("Ethikkommission\n"),
		"c1/0e/c10e77.pdf.gpg":          doc[:1000],
		"c1/0e/c10e78.pdf.gpg.metadata": []byte("{}\n"),
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		for d := filepath.Dir(p); d != dir; d = filepath.Dir(d) {
			mkdir(t, d, 0o750, 1000)
		}
		if err := os.WriteFile(p, data, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Lchown(p, 1000, 1000); err != nil {
			t.Fatal(err)
		}
	}
	mkdir(t, filepath.Join(dir, "empty-dir"), 0o700, 1000)
	if err := os.Symlink("4f/2a/4f2a9c.pdf.gpg", filepath.Join(dir, "latest")); err != nil {
		t.Fatal(err)
	}
}

// tree describes everything under dir (itself included) by relative path: type
// and mode, owner, and the content's hash or the link's target.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		what := ""
		switch {
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			what = fmt.Sprintf("%x", sha256.Sum256(data))
		case fi.Mode()&fs.ModeSymlink != 0:
			what, _ = os.Readlink(p)
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = fmt.Sprintf("%v %d:%d %s", fi.Mode(), st.Uid, st.Gid, what)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, want, got string) {
	t.Helper()
	w, g := tree(t, want), tree(t, got)
	for p, d := range w {
		if g[p] != d {
			t.Errorf("%s: restored as %q, backed up as %q", p, g[p], d)
		}
	}
	for p := range g {
		if _, ok := w[p]; !ok {
			t.Errorf("%s: restored but not backed up", p)
		}
	}
}

// database makes ecs.database, as the postgresql service does, with a table of the
// app holding one row.
func database(t *testing.T, m *machine.Machine, e *env.Env) {
	t.Helper()
	ctx := context.Background()
	dropDatabase(t, m, e)
	t.Cleanup(func() { dropDatabase(t, m, e) })
	if _, err := postgresql.EnsureDatabase(ctx, m, e.ECS.Database); err != nil {
		t.Fatal(err)
	}
	sql := "SET ROLE app; CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'Votum: zustimmend, Prüfung ä')"
	if _, err := postgresql.Query(ctx, m, e.ECS.Database, sql); err != nil {
		t.Fatal(err)
	}
}

// dropDatabase drops ecs.database and those a restore kept.
func dropDatabase(t *testing.T, m *machine.Machine, e *env.Env) {
	t.Helper()
	ctx := context.Background()
	dbs, err := postgresql.Query(ctx, m, "", "SELECT datname FROM pg_database WHERE datname = '"+e.ECS.Database+"' OR datname LIKE '"+e.ECS.Database+"_before_restore_%'")
	if err != nil {
		t.Fatal(err)
	}
	for _, db := range strings.Fields(dbs) {
		if _, err := postgresql.Query(ctx, m, "", "DROP DATABASE "+ident(db)); err != nil {
			t.Fatal(err)
		}
	}
}

// checkDatabase says whether the row and its owner came back.
func checkDatabase(t *testing.T, m *machine.Machine, e *env.Env) {
	t.Helper()
	ctx := context.Background()
	got, err := postgresql.Query(ctx, m, e.ECS.Database, "SELECT body || '|' || pg_get_userbyid(c.relowner) FROM notes, pg_class c WHERE c.relname = 'notes' AND id = 1")
	if err != nil {
		t.Fatal(err)
	}
	if want := "Votum: zustimmend, Prüfung ä|app"; got != want {
		t.Errorf("restored row and owner %q, want %q", got, want)
	}
	// A restore over no database leaves no other behind.
	dbs, err := postgresql.Query(ctx, m, "", "SELECT datname FROM pg_database WHERE datname LIKE '"+e.ECS.Database+"%' AND datname NOT LIKE '%_before_restore_%'")
	if err != nil {
		t.Fatal(err)
	}
	if dbs != e.ECS.Database {
		t.Errorf("databases after the restore: %q, want only %s", dbs, e.ECS.Database)
	}
}

// keyring is a GnuPG home of the test's own with the backup key, for tools the
// test runs as the original appliance did.
func keyring(t *testing.T, e *env.Env) string {
	t.Helper()
	home, err := os.MkdirTemp("", "gh-") // short: gpg-agent's socket lives there
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		exec.Command("gpgconf", "--homedir", home, "--kill", "all").Run()
		os.RemoveAll(home)
	})
	cmd := exec.Command("gpg", "--homedir", home, "--batch", "--import")
	cmd.Stdin = strings.NewReader(e.Appliance.Backup.Encrypt)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gpg --import: %v\n%s", err, out)
	}
	return home
}

// noSecrets checks that the agent's output carries no key material.
func noSecrets(t *testing.T, out string, secrets ...string) {
	t.Helper()
	for _, s := range append(secrets, "PRIVATE KEY") {
		if strings.Contains(out, s) {
			t.Errorf("the output carries a secret (%.12s…):\n%s", s, out)
		}
	}
}
