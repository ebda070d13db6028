package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"net/smtp"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// checkServing: status.json says the appliance runs and serves commit.
func checkServing(t testing.TB, b *booted, commit string) {
	t.Helper()
	st := b.status(t, "running")
	if a, _ := st["app"].(map[string]any); a == nil || a["serving"] != commit {
		t.Errorf("status.json app: %v, want serving %s", st["app"], commit)
	}
}

// field is a value the stand-in's page shows ("NAME: VALUE").
func field(page, name string) string {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `: (.*)$`).FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return m[1]
}

// waitPage polls the page until ok accepts it, and returns the last one.
func waitPage(t testing.TB, w *webClient, what string, ok func(string) bool) string {
	t.Helper()
	var page string
	for range 60 {
		page, _ = w.page(t)
		if ok(page) {
			return page
		}
		time.Sleep(5 * time.Second)
	}
	t.Errorf("the page never showed %s:\n%s", what, page)
	return page
}

// checkApp: the application's parts work together through the appliance — the
// worker gets beat's ticks through redis, the cache is memcached, a mail to port 465
// reaches the app's smtpd through stunnel; the user manual was copied in, the vault
// keys imported, the secrets are 0600, the logs are in the journal.
func checkApp(t testing.TB, b *booted, w *webClient) {
	waitPage(t, w, "a beat tick and the cache", func(p string) bool {
		n, _ := strconv.Atoi(field(p, "beat ticks"))
		return n > 0 && field(p, "cache") == "ok"
	})
	roots := x509.NewCertPool()
	roots.AddCert(parseCert(t, w.serverCert))
	conn, err := tls.Dial("tcp", w.v.ports[465], &tls.Config{ServerName: domain, RootCAs: roots})
	if err != nil {
		t.Fatalf("465: %v", err)
	}
	c, err := smtp.NewClient(conn, domain)
	if err != nil {
		t.Fatalf("SMTP on 465: %v", err)
	}
	send := func() error {
		if err := c.Mail("sender@example.net"); err != nil {
			return err
		}
		if err := c.Rcpt("office@" + domain); err != nil {
			return err
		}
		wc, err := c.Data()
		if err != nil {
			return err
		}
		if _, err := wc.Write([]byte("Subject: e2e\r\n\r\nto the application's smtpd\r\n")); err != nil {
			return err
		}
		return wc.Close()
	}
	if err := send(); err != nil {
		t.Errorf("sending to the application through 465: %v", err)
	}
	c.Quit()
	waitPage(t, w, "the mail", func(p string) bool { return field(p, "mails received") == "1" })

	if got := strings.TrimSpace(b.ssh(t, "cat /app/ecs/static/help/index.html")); got != "e2e manual" {
		t.Errorf("user manual in static/help: %q", got)
	}
	if got := strings.TrimSpace(b.ssh(t, "runuser -u app -- gpg --homedir /data/ecs-gpg --batch --list-secret-keys --with-colons | grep -c '^sec'")); got != "2" {
		t.Errorf("vault keys in /data/ecs-gpg: %s secret keys, want 2", got)
	}
	if got := strings.TrimSpace(b.ssh(t, "stat -c '%a %U' /app/etc/ecs/ecs.env /app/etc/ecs/settings.py")); got != "600 app\n600 app" {
		t.Errorf("the app's configuration: %q", got)
	}
	if logs := b.ssh(t, "journalctl -o cat -u appliance.service | tail -n 50"); !strings.Contains(logs, "ecs.web") {
		t.Errorf("no container output in journalctl -u appliance:\n%s", logs)
	}
}

// checkUpdates moves the application through three commits: one with a migration
// (dumped first, then migrated) by the update timer's service, one that does not
// build (the previous build keeps serving) by appliance-agent app update, and one
// whose migration fails (the database is restored from the dump and the previous
// build serves again, recorded as a rollback) by the timer's service again.
func checkUpdates(t testing.TB, b *booted, w *webClient, repo *gitRepo) {
	update := func(what string) string {
		start := time.Now()
		out, err := b.trySSH("appliance-agent app update")
		t.Logf("app update (%s) in %s", what, time.Since(start).Round(time.Second))
		if err != nil {
			t.Fatalf("app update (%s): %v\n%s", what, err, out)
		}
		return out
	}
	// The timer's way: appliance-update.service, with Debian's mirror out of reach (a
	// site whose mirror is down; and no package upgrade makes the outcome depend on the
	// day): the system step fails, the application is still updated, and the unit
	// fails so the failure is seen. It returns that run's journal.
	byService := func(what string) string {
		b.ssh(t, `printf 'Acquire::http::Proxy "http://127.0.0.1:9/";\nAcquire::https::Proxy "http://127.0.0.1:9/";\n' >/etc/apt/apt.conf.d/99e2e-offline`)
		defer b.ssh(t, "rm /etc/apt/apt.conf.d/99e2e-offline")
		start := time.Now()
		if out, err := b.trySSH("systemctl start appliance-update.service"); err == nil {
			t.Errorf("appliance-update.service (%s) succeeded with the mirror out of reach:\n%s", what, out)
		}
		t.Logf("appliance-update.service (%s) in %s", what, time.Since(start).Round(time.Second))
		out := b.ssh(t, "journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID=$(systemctl show -p InvocationID --value appliance-update.service)")
		for _, want := range []string{"update: system packages failed", "update: application", "update: certificate"} {
			if !strings.Contains(out, want) {
				t.Errorf("the update unit's journal (%s) has no %q:\n%s", what, want, out)
			}
		}
		return out
	}
	appStatus := func() string { return b.ssh(t, "appliance-agent app status") }

	v2 := repo.commit(t, "standin/commits/new-migration", "a new migration")
	out := byService("new migration")
	page, _ := w.page(t)
	if field(page, "version") != "2" || field(page, "migration") != "0002_counter_last_at" {
		t.Errorf("after the update with a migration:\n%s\n%s", page, out)
	}
	if _, err := b.trySSH("gzip -t /data/ecs-pgdump/ecs-migrate.pgdump.gz"); err != nil {
		t.Errorf("no dump before the migration: %v", err)
	}
	if st := appStatus(); !strings.Contains(st, "last_migration_ecs       "+v2) || !strings.Contains(st, "last_running_ecs         "+v2) {
		t.Errorf("app status after the migration:\n%s", st)
	}

	v3 := repo.commit(t, "standin/commits/build-fails", "a build that fails")
	out = update("build fails")
	if !strings.Contains(out, "build of "+v3[:12]+" failed") {
		t.Errorf("app update of a commit that does not build:\n%s", out)
	}
	if page, _ := w.page(t); field(page, "version") != "2" {
		t.Errorf("the failed build replaced the serving one:\n%s", page)
	}
	st := b.status(t, "running")
	if a, _ := st["app"].(map[string]any); a == nil || !strings.Contains(a["notice"].(string), "build of "+v3[:12]+" failed") {
		t.Errorf("status.json does not say the build failed: %v", st["app"])
	}

	repo.revert(t)
	v4 := repo.commit(t, "standin/commits/migration-fails", "a migration that fails")
	page, _ = w.page(t)
	hits, _ := strconv.Atoi(field(page, "hits"))
	out = byService("migration fails")
	if !strings.Contains(out, "migration of "+v4[:12]+" failed") || !strings.Contains(out, "the database was restored from /data/ecs-pgdump/ecs-migrate.pgdump.gz") {
		t.Errorf("app update of a commit whose migration fails:\n%s", out)
	}
	page, _ = w.page(t)
	if n, _ := strconv.Atoi(field(page, "hits")); field(page, "version") != "2" || field(page, "migration") != "0002_counter_last_at" || n <= hits {
		t.Errorf("after the rollback (hits were %d):\n%s", hits, page)
	}
	if st := appStatus(); !strings.Contains(st, "last_rollback_ecs        "+v4+" -> "+v2) || !strings.Contains(st, "last_failed_ecs          "+v4) {
		t.Errorf("app status after the rollback:\n%s", st)
	}
	if kept := b.ssh(t, `runuser -u postgres -- psql -AtX -c "SELECT count(*) FROM pg_database WHERE datname LIKE 'ecs_before_restore_%'"`); strings.TrimSpace(kept) != "1" {
		t.Errorf("the migrated database was not kept: %s", kept)
	}
}
