package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/postgresql"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// fullStack boots the appliance with its own key and certificate, mandatory client
// certificates whose CA env.yml puts in /data/ecs-ca, a data disk, and the ECS
// stand-in (e2e/standin: a test fixture following ECS's container contract, not ECS)
// from a git server on the host; then checks every host service and the application
// from outside and inside, boots again with the git server down, and updates the
// application to a commit with a migration, one that does not build and one whose
// migration fails, with pdf-as on a Tomcat stand-in base left running throughout;
// then backs up to a disk the OVMF VM restores from.
func fullStack(t *testing.T, ecsEnv, image, shared string) *backupRun {
	dir := t.TempDir()
	git := newGitServer(t)
	repo, v1 := git.repo(t, "ecs", "standin/ecs")
	manual := filepath.Join(t.TempDir(), "docs")
	if err := os.MkdirAll(filepath.Join(manual, "user-manual-de"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(manual, "user-manual-de", "index.html"), []byte("e2e manual\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git.repo(t, "ecs-docs", manual)
	key, pub := sshKey(t, dir)
	serverCA := newCA(t, "e2e server CA")
	serverKey, serverCert := serverCA.issue(t, domain, true)
	pdfas := newPDFASSite(t)
	envPath, iso := site(t, ecsEnv, dir, func(s string) string {
		s = withSSHKey(t, s, pub)
		s = pdfas.edit(t, s)
		s = withDataDisk(t, s)
		s = withSources(t, s, git.guestURL("ecs"), git.guestURL("ecs-docs"))
		s = withBackupDisk(t, s)
		return replace(t, s, "    client_certs_mandatory: false\n",
			"    client_certs_mandatory: true\n    key: |\n"+block(string(serverKey), 6)+"    cert: |\n"+block(string(serverCert), 6))
	})
	v := newVM(t, dir, image, iso, true, false, 22, 80, 443, 465)
	v.sshKey = key
	backupDisk := newBackupDisk(t, shared)
	v.extra = []string{backupDisk}

	first := v.boot(t, "first", "changed")
	web := newWebClient(t, first, serverCert)
	checkServing(t, first, v1)
	checkWeb(t, web, 200, "version: 1")
	checkDatabase(t, first)
	checkNothingListens(t, first)
	checkMail(t, first, envPath)
	checkApp(t, first, web)
	pdfas.check(t, first, web)
	first.powerOff(t)
	checkDataDisk(t, v.data)

	git.down(true) // the second boot must not need it
	second := v.boot(t, "second", "unchanged")
	if n := git.down(false); n > 0 {
		t.Errorf("the second boot asked the git server %d times", n)
	}
	checkServing(t, second, v1)
	checkWeb(t, web, 200, "version: 1")
	checkBadInput(t, second, web)
	started := pdfas.check(t, second, web)
	checkUpdates(t, second, web, repo)
	pdfas.unmoved(t, second, started)
	return checkBackup(t, second, envPath, backupDisk)
}

// withSources points ecs.git and ecs.docs.git at the host's git server.
func withSources(t testing.TB, s, ecs, docs string) string {
	return replace(t, s, "ecs:\n", "ecs:\n  git:\n    source: "+ecs+"\n    branch: main\n  docs:\n    git:\n      source: "+docs+"\n      branch: main\n")
}

// withDataDisk makes the env ask for ecs-data and ecs-volatile on the VM's second disk.
func withDataDisk(t testing.TB, s string) string {
	i, j := strings.Index(s, "  storage:\n"), strings.Index(s, "  # mail signing key")
	if i < 0 || j < i {
		t.Fatal("env.yml from ecs-env new has no storage section where expected")
	}
	return s[:i] + `  storage:
    ignore: {data: false, volatile: false}
    setup:
      disks:
        - device: /dev/vdb
          partitions:
            - {label: ecs-data, size: 60%}
            - {label: ecs-volatile, size: rest}
` + s[j:]
}

// webClient reaches the VM's https port with the env's certificate trusted, without
// and with a client certificate of the env's client CA.
type webClient struct {
	v                   *vm
	serverCert          []byte
	anonymous, withCert *http.Client
}

// The client certificate is one the admin issues with appliance-agent app
// client-cert for a user made with app create-user: signed by the CA the application
// made at bootstrap.
func newWebClient(t testing.TB, b *booted, serverCert []byte) *webClient {
	roots := x509.NewCertPool()
	roots.AddCert(parseCert(t, serverCert))
	out := b.ssh(t, "appliance-agent app create-user e2e@example.org Erika Muster f")
	if m := regexp.MustCompile(`passphrase of e2e@example.org \(shown once\): (\S{12,})\n`).FindStringSubmatch(out); m == nil {
		t.Errorf("app create-user:\n%s", out)
	}
	out = b.ssh(t, "appliance-agent app client-cert e2e@example.org 'Erika Muster'")
	m := regexp.MustCompile(`passphrase of the certificate \(shown once\): (\S+)\nthe certificate for e2e@example.org is (/volatile/ecs-cache/client-certs/\S+\.p12) `).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("app client-cert:\n%s", out)
	}
	pemData := b.ssh(t, "printf '%s\\n' "+shellQuote(m[1])+" | openssl pkcs12 -in "+m[2]+" -nodes -passin stdin")
	pair, err := tls.X509KeyPair([]byte(pemData), []byte(pemData))
	if err != nil {
		t.Fatalf("the client certificate from app client-cert: %v\n%s", err, pemData)
	}
	v := b.v
	return &webClient{v: v, serverCert: serverCert, anonymous: httpsClient(v.ports[443], roots, nil), withCert: httpsClient(v.ports[443], roots, &pair)}
}

// page is the body of https://domain/ with the client certificate.
func (w *webClient) page(t testing.TB) (string, int) {
	body, code, err := get(w.withCert, "https://"+domain+"/")
	if err != nil {
		t.Errorf("https with a client certificate: %v", err)
	}
	return body, code
}

// checkWeb: https serves the env's certificate with TLS 1.2 and 1.3 only; without a
// client certificate nginx refuses, with one of the env's CA it answers wantCode with
// wantBody in the page; http redirects to https; 465 presents the same certificate.
func checkWeb(t testing.TB, w *webClient, wantCode int, wantBody string) {
	for _, ver := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		certs, err := handshake(w.v.ports[443], ver, ver)
		if err != nil || !sameCert(certs[0], w.serverCert) {
			t.Errorf("443 with TLS %x: %v, or not the env's certificate", ver, err)
		}
	}
	if _, err := handshake(w.v.ports[443], tls.VersionTLS10, tls.VersionTLS11); err == nil {
		t.Error("443 accepts TLS 1.1")
	}
	body, code, err := get(w.anonymous, "https://"+domain+"/")
	if err != nil || code != 400 {
		t.Errorf("https without a client certificate: %d %v, want 400\n%s", code, err, body)
	}
	if body, code := w.page(t); code != wantCode || !strings.Contains(body, wantBody) {
		t.Errorf("https with a client certificate: %d, want %d and %q\n%s", code, wantCode, wantBody, body)
	}
	resp, err := plainClient().Get("http://" + w.v.ports[80] + "/some/path")
	if err != nil || resp.StatusCode != 301 || resp.Header.Get("Location") != "https://"+domain+"/some/path" {
		t.Errorf("http: %v %v, want 301 to https", resp, err)
	} else {
		resp.Body.Close()
	}
	certs, err := handshake(w.v.ports[465], tls.VersionTLS12, tls.VersionTLS13)
	if err != nil || !sameCert(certs[0], w.serverCert) {
		t.Errorf("465: %v, or not the env's certificate", err)
	}
}

// checkDatabase: the database and the role exist, and the tuning is the formula's
// for the VM's memory and cores.
func checkDatabase(t testing.TB, b *booted) {
	psql := func(sql string) string {
		return strings.TrimSpace(b.ssh(t, "runuser -u postgres -- psql -AtX -c "+shellQuote(sql)))
	}
	if got := psql("SELECT datname || '|' || pg_get_userbyid(datdba) || '|' || datcollate FROM pg_database WHERE datname = 'ecs'"); got != "ecs|app|de_DE.UTF-8" {
		t.Errorf("database ecs: %q", got)
	}
	if got := psql("SELECT extname FROM pg_extension WHERE extname = 'pg_stat_statements'"); got != "" {
		t.Errorf("pg_stat_statements is in the postgres database: %q", got)
	}
	if got := strings.TrimSpace(b.ssh(t, `runuser -u postgres -- psql -AtX -d ecs -c "SELECT extname FROM pg_extension WHERE extname = 'pg_stat_statements'"`)); got != "pg_stat_statements" {
		t.Errorf("pg_stat_statements in ecs: %q", got)
	}
	if mode := strings.TrimSpace(b.ssh(t, "stat -c %a /app/etc/ecs/database_url.env")); mode != "600" {
		t.Errorf("database_url.env mode %s", mode)
	}
	facts := strings.Fields(b.ssh(t, "awk '/^MemTotal:/ {print $2}' /proc/meminfo; nproc"))
	kb, _ := strconv.Atoi(facts[0])
	cores, _ := strconv.Atoi(facts[1])
	want := postgresql.Tune(services.Facts{MemoryMB: kb / 1024, Cores: cores})
	got := psql("SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('effective_cache_size', 'max_connections', 'shared_buffers', 'work_mem')")
	// shared_buffers and effective_cache_size are in 8 kB pages, work_mem in kB.
	wantS := fmt.Sprintf("effective_cache_size=%d max_connections=%d shared_buffers=%d work_mem=%d",
		want.EffectiveCacheSizeMB*128, want.MaxConnections, want.SharedBuffersMB*128, want.WorkMemKB)
	if got != wantS {
		t.Errorf("tuning for %d kB, %d cores: %s, want %s", kb, cores, got, wantS)
	}
}

// checkMail: a message sent with sendmail in the VM (to root, delivered into its
// Maildir: the VM has no DNS to send further) carries a DKIM signature that dkimpy on
// the host verifies against the DNS record ecs-env new printed.
func checkMail(t testing.TB, b *booted, envPath string) {
	b.ssh(t, `printf 'From: root@e2e.example.org\nTo: root@e2e.example.org\nSubject: e2e\nMessage-ID: <e2e@e2e.example.org>\n\nSigned by opendkim.\n' | /usr/sbin/sendmail -f root@e2e.example.org root@e2e.example.org`)
	var msg string
	for range 30 {
		if out, err := b.trySSH(`cat /root/Maildir/new/*`); err == nil && out != "" {
			msg = out
			break
		}
		time.Sleep(2 * time.Second)
	}
	if msg == "" {
		diag, _ := b.trySSH("postqueue -p; journalctl --no-pager -b | grep -E 'postfix|opendkim' | tail -30")
		t.Fatalf("the message did not arrive in /root/Maildir:\n%s", diag)
	}
	if !strings.Contains(msg, "DKIM-Signature:") {
		t.Fatalf("the message has no DKIM signature:\n%s", msg)
	}
	if got := testtool.DKIMVerify(t, msg, dkimRecord(t, envPath)); got != "True" {
		t.Errorf("dkimpy: %s\n%s", got, msg)
	}
}

// checkBadInput: a CA file nginx cannot load (written as ECS might break it) makes the
// watch unit refuse to reload nginx, which keeps serving; an extra.packages entry that
// does not exist fails and is named.
func checkBadInput(t testing.TB, b *booted, w *webClient) {
	b.ssh(t, "cp /data/ecs-ca/ca.cert.pem /root/ca.good && echo broken > /data/ecs-ca/ca.cert.pem")
	var journal string
	for range 30 {
		journal = b.ssh(t, "journalctl -o cat -u appliance-ecs-ca.service")
		if strings.Contains(journal, "not reloaded") {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if !strings.Contains(journal, "service nginx: nginx.service not reloaded, what it would load fails its check") {
		t.Errorf("nginx was not kept from loading the broken CA:\n%s", journal)
	}
	checkWeb(t, w, 200, "version: 1")
	b.ssh(t, "cp /root/ca.good /data/ecs-ca/ca.cert.pem")

	b.ssh(t, "cp /run/active-env.yml /root/active-env.good")
	defer b.ssh(t, "cp /root/active-env.good /run/active-env.yml")
	b.ssh(t, `sed -i 's/^  storage:$/  extra:\n    packages: [ecs-e2e-no-such-package]\n  storage:/' /run/active-env.yml`)
	out, err := b.trySSH("appliance-agent configure extra")
	if err == nil || !strings.Contains(out, "cannot install ecs-e2e-no-such-package") {
		t.Errorf("configure with a missing package: %v\n%s", err, out)
	}
}

func parseCert(t testing.TB, pemData []byte) *x509.Certificate {
	b, _ := pem.Decode(pemData)
	if b == nil {
		t.Fatal("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// dkimRecord is the one-line TXT value of default._domainkey in the env's DNS how-to.
func dkimRecord(t testing.TB, envPath string) string {
	out, err := exec.Command("grep", "-m1", "^#   v=DKIM1;", envPath).Output()
	if err != nil {
		t.Fatalf("no DKIM record in %s", envPath)
	}
	return strings.TrimSpace(strings.TrimPrefix(string(out), "#"))
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// checkDataDisk checks both labels are on the data disk and their filesystems are clean.
func checkDataDisk(t testing.TB, img string) {
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	defer func() {
		exec.Command("partx", "-d", dev).Run()
		exec.Command("losetup", "-d", dev).Run()
	}()
	run(t, "partx", "-a", dev)
	for i, label := range []string{"ecs-data", "ecs-volatile"} {
		part := fmt.Sprintf("%sp%d", dev, i+1)
		got, err := exec.Command("blkid", "-p", "-s", "LABEL", "-o", "value", part).Output()
		if err != nil || strings.TrimSpace(string(got)) != label {
			t.Errorf("%s: label %q (%v), want %s", part, got, err, label)
			continue
		}
		if out, err := exec.Command("e2fsck", "-fn", part).CombinedOutput(); err != nil {
			t.Errorf("e2fsck %s: %v\n%s", label, err, out)
		}
	}
}
