package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/postgresql"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// fullStack boots the appliance with its own key and certificate, mandatory client
// certificates whose CA env.yml puts in /data/ecs-ca, and a data disk, then checks
// every host service from outside and inside.
func fullStack(t *testing.T, ecsEnv, image string) {
	dir := t.TempDir()
	key, pub := sshKey(t, dir)
	serverCA, clientCA := newCA(t, "e2e server CA"), newCA(t, "e2e client CA")
	serverKey, serverCert := serverCA.issue(t, domain, true)
	envPath, iso := site(t, ecsEnv, dir, func(s string) string {
		s = withSSHKey(t, s, pub)
		s = withDataDisk(t, s)
		s = replace(t, s, "    client_certs_mandatory: false\n",
			"    client_certs_mandatory: true\n    key: |\n"+block(string(serverKey), 6)+"    cert: |\n"+block(string(serverCert), 6))
		return replace(t, s, "  storage:\n", "  extra:\n    files:\n      - path: /data/ecs-ca/ca.cert.pem\n        owner: \"1000\"\n        permissions: \"0644\"\n        contents: |\n"+block(string(clientCA.pem), 10)+"  storage:\n")
	})
	v := newVM(t, dir, image, iso, true, false, 22, 80, 443, 465)
	v.sshKey = key

	first := v.boot(t, "first", "changed")
	first.status(t)
	checkWeb(t, v, serverCert, clientCA)
	checkDatabase(t, first)
	checkMail(t, first, envPath)
	first.powerOff(t)
	checkDataDisk(t, v.data)

	second := v.boot(t, "second", "unchanged")
	checkBadInput(t, second, serverCert, clientCA)
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

// checkWeb: https serves the env's certificate with TLS 1.2 and 1.3 only; without a
// client certificate nginx refuses, with one of the env's CA it answers with the
// status page; http redirects to https; 465 presents the same certificate.
func checkWeb(t testing.TB, v *vm, serverCert []byte, clientCA *ca) {
	for _, ver := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		certs, err := handshake(v.ports[443], ver, ver)
		if err != nil || !sameCert(certs[0], serverCert) {
			t.Errorf("443 with TLS %x: %v, or not the env's certificate", ver, err)
		}
	}
	if _, err := handshake(v.ports[443], tls.VersionTLS10, tls.VersionTLS11); err == nil {
		t.Error("443 accepts TLS 1.1")
	}
	roots := x509.NewCertPool()
	roots.AddCert(parseCert(t, serverCert))
	body, code, err := get(httpsClient(v.ports[443], roots, nil), "https://"+domain+"/")
	if err != nil || code != 400 {
		t.Errorf("https without a client certificate: %d %v, want 400\n%s", code, err, body)
	}
	ckey, ccert := clientCA.issue(t, "e2e user", false)
	pair, err := tls.X509KeyPair(ccert, ckey)
	if err != nil {
		t.Fatal(err)
	}
	body, code, err = get(httpsClient(v.ports[443], roots, &pair), "https://"+domain+"/")
	if err != nil || code != 503 || !strings.Contains(body, "Appliance Ready") {
		t.Errorf("https with a client certificate: %d %v, want 503 and the status page\n%s", code, err, body)
	}
	resp, err := plainClient().Get("http://" + v.ports[80] + "/some/path")
	if err != nil || resp.StatusCode != 301 || resp.Header.Get("Location") != "https://"+domain+"/some/path" {
		t.Errorf("http: %v %v, want 301 to https", resp, err)
	} else {
		resp.Body.Close()
	}
	certs, err := handshake(v.ports[465], tls.VersionTLS12, tls.VersionTLS13)
	if err != nil || !sameCert(certs[0], serverCert) {
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
func checkBadInput(t testing.TB, b *booted, serverCert []byte, clientCA *ca) {
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
	checkWeb(t, b.v, serverCert, clientCA)
	b.ssh(t, "cp /root/ca.good /data/ecs-ca/ca.cert.pem")

	b.ssh(t, `sed -i 's/^  extra:$/  extra:\n    packages: [ecs-e2e-no-such-package]/' /run/active-env.yml`)
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
