// Package standin tests the ECS stand-in's Python side (e2e/standin/ecs, a test fixture
// following ECS's container contract; not ECS) on the host, without docker: a
// temporary PostgreSQL cluster from Debian's binaries, the host's /usr/bin/python3 with
// Debian's python3-django, python3-psycopg2, python3-celery, python3-aiosmtpd.
package standin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

const python = "/usr/bin/python3"

func TestStandin(t *testing.T) {
	requirePython(t)
	testtool.Require(t, "openssl")
	pg := startPostgres(t)

	root := t.TempDir()
	a := newApp(t, filepath.Join(root, "v1"), "ecs")
	const password = "p@ss/w:rd %x"
	pg.psql(t, fmt.Sprintf("CREATE ROLE app LOGIN PASSWORD '%s'", password))
	a.setDatabase(pg.url("app", password, "ecs"))

	t.Run("checkdb", func(t *testing.T) {
		a.checkdb(t, 8, "missing")
		wrong := newApp(t, filepath.Join(root, "wrong"), "ecs")
		wrong.setDatabase(pg.url("app", "wrong", "ecs"))
		wrong.checkdb(t, 9, "password authentication failed")
		wrong.setDatabase(fmt.Sprintf("postgres://app:x@%s/ecs", testtool.FreeAddress(t)))
		wrong.checkdb(t, 9, "cannot connect")

		pg.psql(t, "CREATE DATABASE ecs_south OWNER app", "CREATE DATABASE ecs_other OWNER app")
		pg.psqlDB(t, "ecs_south", "CREATE TABLE south_migrationhistory (id int)")
		pg.psqlDB(t, "ecs_other", "CREATE TABLE something (id int)")
		wrong.setDatabase(pg.url("app", password, "ecs_south"))
		wrong.checkdb(t, 1, "South")
		wrong.setDatabase(pg.url("app", password, "ecs_other"))
		wrong.checkdb(t, 3, "no migration history")

		// A fresh database as the contract makes it (the locale aside).
		pg.psql(t, "CREATE DATABASE ecs OWNER app TEMPLATE template0 ENCODING 'UTF8'")
		a.checkdb(t, 2, "empty")
	})
	if t.Failed() {
		return
	}

	if !t.Run("migrate", func(t *testing.T) {
		a.mustRun(t, "", "manage.py", "migrate", "--noinput")
		a.checkdb(t, 0, "Django migrations found")
		a.mustRun(t, "", "manage.py", "makemigrations", "--check", "--dry-run", "core")
	}) {
		return
	}

	t.Run("bootstrap", func(t *testing.T) {
		out := a.mustRun(t, "", "manage.py", "bootstrap")
		if !strings.Contains(out, "created the client-certificate CA") {
			t.Errorf("bootstrap: %s", out)
		}
		ca := filepath.Join(a.root, "ecs-ca")
		cert, crl := readFile(t, filepath.Join(ca, "ca.cert.pem")), readFile(t, filepath.Join(ca, "crl.pem"))
		if st, err := os.Stat(filepath.Join(ca, "private", "ca.key.pem")); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("CA key: %v %v", st, err)
		}
		if out, err := exec.Command("openssl", "crl", "-in", filepath.Join(ca, "crl.pem"), "-CAfile", filepath.Join(ca, "ca.cert.pem"), "-noout").CombinedOutput(); err != nil || !strings.Contains(string(out), "verify OK") {
			t.Errorf("crl.pem against ca.cert.pem: %v %s", err, out)
		}
		if out, err := exec.Command("openssl", "x509", "-in", filepath.Join(ca, "ca.cert.pem"), "-noout", "-text").CombinedOutput(); err != nil || !strings.Contains(string(out), "CA:TRUE") {
			t.Errorf("ca.cert.pem: %v %s", err, out)
		}
		for _, d := range []string{"ecs-storage-vault", "ecs-gpg", "ecs-cache"} {
			if _, err := os.Stat(filepath.Join(a.root, d)); err != nil {
				t.Error(err)
			}
		}
		// Idempotent: a second run keeps the CA.
		if out := a.mustRun(t, "", "manage.py", "bootstrap"); !strings.Contains(out, "exists") {
			t.Errorf("second bootstrap: %s", out)
		}
		if readFile(t, filepath.Join(ca, "ca.cert.pem")) != cert || readFile(t, filepath.Join(ca, "crl.pem")) != crl {
			t.Error("second bootstrap changed ca.cert.pem or crl.pem")
		}
	})

	smtpAddr := testtool.FreeAddress(t)
	a.settings = fmt.Sprintf("DOMAIN = 'standin.test'\nALLOWED_HOSTS = [DOMAIN, '127.0.0.1']\nSMTPD_CONFIG['listen_addr'] = ('127.0.0.1', %s)\nSMTPD_CONFIG['domain'] = DOMAIN\n", port(smtpAddr))
	web := a.start(t, "runserver")

	t.Run("page", func(t *testing.T) {
		p := get(t, web, "/")
		for _, want := range []string{"version: 1\n", "hits: 1\n", "mails received: 0\n", "migration: 0001_initial\n", "domain: standin.test\n", "not ECS"} {
			if !strings.Contains(p, want) {
				t.Errorf("page lacks %q:\n%s", want, p)
			}
		}
		if p := get(t, web, "/"); !strings.Contains(p, "hits: 2\n") {
			t.Errorf("second hit:\n%s", p)
		}
	})

	t.Run("smtpd", func(t *testing.T) {
		a.start(t, "smtpd", smtpAddr)
		msg := "From: a@example.org\r\nTo: b@example.org\r\nSubject: Stand-in test\r\n\r\nHello.\r\n"
		if err := smtp.SendMail(smtpAddr, nil, "a@example.org", []string{"b@example.org", "c@example.org"}, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		if st := status(t, web); st["mails received"] != float64(1) {
			t.Errorf("status after one mail: %v", st)
		}
		out := a.mustRun(t, "", "manage.py", "shell", "-c",
			"import json; from ecs.core.models import ReceivedMail as M; m = M.objects.get(); print(json.dumps([m.sender, m.recipients, m.subject, m.size]))")
		if strings.TrimSpace(out) != fmt.Sprintf(`["a@example.org", "b@example.org,c@example.org", "Stand-in test", %d]`, len(msg)) {
			t.Errorf("stored mail: %s", out)
		}
	})

	t.Run("beat task", func(t *testing.T) {
		out := a.mustRun(t, "", "manage.py", "shell", "-c", "from ecs.core.tasks import beat_tick; print(beat_tick.apply().get())")
		if strings.TrimSpace(out) != "1" {
			t.Errorf("beat_tick: %s", out)
		}
		if st := status(t, web); st["beat ticks"] != float64(1) {
			t.Errorf("status: %v", st)
		}
	})

	t.Run("create_internal_user", func(t *testing.T) {
		// Values are data: a quote and Python in the name are stored as they are.
		last := `O'Brien"); import os; os.system("touch /tmp/pwned") #`
		pw := strings.TrimSpace(a.mustRun(t, "", "manage.py", "create_internal_user", "Office@Example.org", "Ada", last, "f"))
		pw2 := strings.TrimSpace(a.mustRun(t, `{"email": "tom@example.org", "first_name": "Tom", "last_name": "$(id)", "gender": "m"}`,
			"manage.py", "create_internal_user", "--json"))
		if len(pw) < 16 || len(pw2) < 16 || pw == pw2 {
			t.Fatalf("passphrases %q %q", pw, pw2)
		}
		check := "import os, json\nfrom django.contrib.auth import authenticate\n" +
			"u = authenticate(username=os.environ['CHECK_USER'], password=os.environ['CHECK_PW'])\n" +
			"print(json.dumps(u and [u.last_name, [g.name for g in u.groups.all()], u.profile.gender, u.profile.is_internal]))"
		for _, tc := range []struct{ user, pw, want string }{
			{"office@example.org", pw, fmt.Sprintf(`[%q, ["EC-Office"], "f", true]`, last)},
			{"tom@example.org", pw2, `["$(id)", ["EC-Office"], "m", true]`},
			{"tom@example.org", pw, "null"},
		} {
			out := a.mustRunEnv(t, []string{"CHECK_USER=" + tc.user, "CHECK_PW=" + tc.pw}, "", "manage.py", "shell", "-c", check)
			if strings.TrimSpace(out) != tc.want {
				t.Errorf("%s: %s, want %s", tc.user, out, tc.want)
			}
		}
		if _, err := os.Stat("/tmp/pwned"); err == nil {
			t.Error("a value was executed")
		}
		for _, args := range [][]string{
			{"office@example.org", "A", "B", "f"}, // exists
			{"not-an-address", "A", "B", "f"},
			{"x@example.org", "A", "B", "q"},
			{"x@example.org", "A"},
		} {
			if _, errOut, code := a.run(t, nil, "", append([]string{"manage.py", "create_internal_user"}, args...)...); code == 0 {
				t.Errorf("%q: exit 0 (%s)", args, errOut)
			}
		}
	})

	t.Run("create_client_certificate", func(t *testing.T) {
		out := filepath.Join(root, "ada.p12")
		pw := strings.TrimSpace(a.mustRun(t, "", "manage.py", "create_client_certificate", "office@example.org", "Ada O'Brien/Office, EC", "--out", out))
		if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 || len(pw) < 16 {
			t.Fatalf("p12 %v %v, passphrase %q", st, err, pw)
		}
		pem := filepath.Join(root, "ada.pem")
		cmd := exec.Command("openssl", "pkcs12", "-in", out, "-passin", "env:P12PW", "-nokeys", "-clcerts", "-out", pem)
		cmd.Env = append(os.Environ(), "P12PW="+pw)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("openssl pkcs12: %v %s", err, b)
		}
		b, err := exec.Command("openssl", "verify", "-purpose", "sslclient", "-CAfile", filepath.Join(a.root, "ecs-ca", "ca.cert.pem"), pem).CombinedOutput()
		if err != nil || !strings.Contains(string(b), "OK") {
			t.Errorf("verify: %v %s", err, b)
		}
		b, _ = exec.Command("openssl", "x509", "-in", pem, "-noout", "-subject", "-nameopt", "RFC2253").CombinedOutput()
		if !strings.Contains(string(b), `CN=Ada O'Brien/Office\, EC`) || !strings.Contains(string(b), "office@example.org") {
			t.Errorf("subject: %s", b)
		}
		if _, _, code := a.run(t, nil, "", "manage.py", "create_client_certificate", "x@example.org", "X", "--out", "/nonexistent/x.p12"); code == 0 {
			t.Error("--out in a missing directory: exit 0")
		}
	})

	// The next commit: VERSION 2 and migration 0002, as a copy of the tree with the
	// overlay on top (the same database and directories).
	v2 := a.next(t, filepath.Join(root, "v2"), "new-migration")
	t.Run("new-migration", func(t *testing.T) {
		if _, _, code := v2.run(t, nil, "", "manage.py", "migrate", "--check"); code == 0 {
			t.Error("migrate --check: exit 0 with 0002 pending")
		}
		if out := v2.mustRun(t, "", "manage.py", "showmigrations", "core"); !strings.Contains(out, "[X] 0001_initial") || !strings.Contains(out, "[ ] 0002_counter_last_at") {
			t.Errorf("showmigrations:\n%s", out)
		}
		v2.mustRun(t, "", "manage.py", "makemigrations", "--check", "--dry-run", "core")
		v2.mustRun(t, "", "manage.py", "migrate", "--noinput")
		v2.mustRun(t, "", "manage.py", "migrate", "--check")
		v2.checkdb(t, 0, "")
		web2 := v2.start(t, "runserver")
		p := get(t, web2, "/")
		for _, want := range []string{"version: 2\n", "hits: 3\n", "migration: 0002_counter_last_at\n", "last hit: 20"} {
			if !strings.Contains(p, want) {
				t.Errorf("page lacks %q:\n%s", want, p)
			}
		}
	})

	t.Run("migration-fails", func(t *testing.T) {
		v4 := v2.next(t, filepath.Join(root, "v4"), "migration-fails")
		stdout, stderr, code := v4.run(t, nil, "", "manage.py", "migrate", "--noinput")
		if code == 0 || !strings.Contains(stderr, "fails on purpose") {
			t.Errorf("migrate: exit %d\n%s\n%s", code, stdout, stderr)
		}
		if out := v4.mustRun(t, "", "manage.py", "showmigrations", "core"); !strings.Contains(out, "[X] 0002_counter_last_at") || !strings.Contains(out, "[ ] 0003_fails") {
			t.Errorf("showmigrations:\n%s", out)
		}
		out := v4.mustRun(t, "", "manage.py", "shell", "-c", "from ecs.core.models import Counter; print(Counter.objects.filter(name='migration-0003-ran').count())")
		if strings.TrimSpace(out) != "0" {
			t.Errorf("the failed migration's write was not rolled back: %s", out)
		}
	})

	t.Run("overlays", func(t *testing.T) {
		// build-fails only changes the Dockerfile (and VERSION): a RUN that exits 1.
		df := readFile(t, filepath.Join("commits", "build-fails", "Dockerfile"))
		base := readFile(t, filepath.Join("ecs", "Dockerfile"))
		if !strings.Contains(df, "exit 1") || !strings.HasPrefix(df, base[:strings.Index(base, "WORKDIR")]) {
			t.Error("commits/build-fails/Dockerfile is not the stand-in's Dockerfile with a failing RUN")
		}
		for _, df := range []string{base, df} {
			if strings.Contains(df, "# syntax=") || strings.Contains(df, "apt-get") || strings.Contains(df, "pip ") {
				t.Error("a Dockerfile needs the network or a frontend image")
			}
		}
		for _, s := range []string{"scripts/docker-entrypoint.sh"} {
			if b, err := exec.Command("bash", "-n", filepath.Join("ecs", s)).CombinedOutput(); err != nil {
				t.Errorf("bash -n %s: %v %s", s, err, b)
			}
		}
	})
}

func requirePython(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(python); err != nil {
		testtool.Missing(t, python+" is missing")
	}
	if out, err := exec.Command(python, "-c", "import django, psycopg2, celery, aiosmtpd, redis").CombinedOutput(); err != nil {
		testtool.Missing(t, "the host's python3 lacks the stand-in's modules (Debian: python3-django python3-psycopg2 python3-celery python3-redis python3-aiosmtpd): "+strings.TrimSpace(string(out)))
	}
}

// app is one checkout of the stand-in, laid out as in its image: ROOT/ecs is the
// source, ROOT/ecs-ca and the other directories beside it.
type app struct {
	root, src string
	dburl     string
	settings  string // ECS_SETTINGS
}

func newApp(t *testing.T, root, name string) *app {
	a := &app{root: root, src: filepath.Join(root, name)}
	copyTree(t, "ecs", a.src)
	return a
}

// next is the checkout after committing the overlay commits/NAME: a copy of a's source
// with the overlay on top, sharing a's directories and database.
func (a *app) next(t *testing.T, dir, overlay string) *app {
	n := *a
	n.src = filepath.Join(dir, "ecs")
	copyTree(t, a.src, n.src)
	copyTree(t, filepath.Join("commits", overlay), n.src)
	// The directories of the contract are the same volumes.
	for _, d := range []string{"ecs-ca", "ecs-storage-vault", "ecs-gpg", "ecs-cache"} {
		os.MkdirAll(filepath.Join(a.root, d), 0o755)
		if err := os.Symlink(filepath.Join(a.root, d), filepath.Join(dir, d)); err != nil {
			t.Fatal(err)
		}
	}
	n.root = dir
	return &n
}

func (a *app) setDatabase(u string) { a.dburl = u }

func (a *app) env(extra []string) []string {
	env := []string{"PATH=/usr/bin:/bin", "HOME=" + a.root, "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1",
		"DJANGO_SETTINGS_MODULE=ecs.settings", "DATABASE_URL=" + a.dburl, "ECS_SETTINGS=" + a.settings}
	return append(env, extra...)
}

func (a *app) command(ctx context.Context, extra []string, stdin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, python, args...)
	cmd.Dir = a.src
	cmd.Env = a.env(extra)
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

// run runs python3 ARGS in the source directory and returns its output and exit code.
func (a *app) run(t *testing.T, extra []string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := a.command(ctx, extra, stdin, args...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return o.String(), e.String(), ee.ExitCode()
		}
		t.Fatalf("%v: %v", args, err)
	}
	return o.String(), e.String(), 0
}

func (a *app) mustRun(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	return a.mustRunEnv(t, nil, stdin, args...)
}

func (a *app) mustRunEnv(t *testing.T, extra []string, stdin string, args ...string) string {
	t.Helper()
	o, e, code := a.run(t, extra, stdin, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d\n%s\n%s", args, code, o, e)
	}
	return o
}

func (a *app) checkdb(t *testing.T, want int, says string) {
	t.Helper()
	o, e, code := a.run(t, nil, "", "scripts/checkdb.py")
	if code != want || !strings.Contains(o+e, says) {
		t.Errorf("checkdb on %s: exit %d, want %d saying %q:\n%s%s", a.dburl, code, want, says, o, e)
	}
}

// start runs "manage.py runserver" (on a free port) or "manage.py smtpd" (on addr) in
// the background until the test ends, and returns its address once it listens.
func (a *app) start(t *testing.T, what string, addr ...string) string {
	t.Helper()
	var args []string
	var listen string
	switch what {
	case "runserver":
		listen = testtool.FreeAddress(t)
		args = []string{"manage.py", "runserver", "--noreload", listen}
	case "smtpd":
		listen = addr[0]
		args = []string{"manage.py", "smtpd", "-l", "info"}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := a.command(ctx, nil, "", args...)
	logf, err := os.Create(filepath.Join(a.root, what+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("%s log:\n%s", what, b)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err == nil {
			c.Close()
			return listen
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("%s ended before listening on %s:\n%s", what, listen, b)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not listen on %s", what, listen)
		}
	}
}

func get(t *testing.T, addr, path string) string {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s\n%s", path, resp.Status, b)
	}
	return string(b)
}

func status(t *testing.T, addr string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(get(t, addr, "/status.json")), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// postgres is a temporary cluster on a loopback port and a socket directory, its
// superuser postgres trusted on the socket, passwords required over TCP.
type postgres struct {
	bin, sock, port string
}

func startPostgres(t *testing.T) *postgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		testtool.Missing(t, "no PostgreSQL in /usr/lib/postgresql (Debian: postgresql)")
	}
	sort.Slice(bins, func(i, j int) bool { return version(bins[i]) < version(bins[j]) })
	pg := &postgres{bin: filepath.Dir(bins[len(bins)-1])}
	// The server refuses to run as root: as root, it runs as the postgres account.
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			testtool.Missing(t, "running as root and no postgres account to run the server as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir, err := os.MkdirTemp("", "standin-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	pg.sock = dir
	pg.port = port(testtool.FreeAddress(t))
	data := filepath.Join(dir, "data")
	run := func(name string, args ...string) error {
		cmd := exec.Command(filepath.Join(pg.bin, name), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		cmd.Dir = dir
		cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", name, err, out)
		}
		return nil
	}
	if err := run("initdb", "-D", data, "-U", "postgres", "-E", "UTF8", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %s -k %s -c fsync=off -c full_page_writes=off", pg.port, dir)
	if err := run("pg_ctl", "-D", data, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "-o", opts, "start"); err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		os.RemoveAll(dir)
		t.Fatalf("%v\n%s", err, b)
	}
	t.Cleanup(func() {
		if err := run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"); err != nil {
			t.Error(err)
		}
		os.RemoveAll(dir)
	})
	return pg
}

func version(initdb string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(initdb))))
	return n
}

func (pg *postgres) url(user, password, db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: "127.0.0.1:" + pg.port, Path: "/" + db}
	return u.String()
}

func (pg *postgres) psql(t *testing.T, sqls ...string) { t.Helper(); pg.psqlDB(t, "postgres", sqls...) }

func (pg *postgres) psqlDB(t *testing.T, db string, sqls ...string) {
	t.Helper()
	for _, sql := range sqls {
		cmd := exec.Command(filepath.Join(pg.bin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", pg.sock, "-p", pg.port, "-U", "postgres", "-d", db, "-c", sql)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "LANG=C.UTF-8"}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("psql %s: %v\n%s", sql, err, out)
		}
	}
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// copyTree copies the regular files and directories under src into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.Name() == "__pycache__" {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}
