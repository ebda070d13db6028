package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/firstboot/report/sentrytest"
	"github.com/ethikkom/ecs-appliance/internal/pebbletest"
)

// acmeBoot boots the appliance with ACME against a Pebble on the host, which the
// guest reaches at 10.0.2.2 (QEMU's user network) and which validates http-01
// through the forwarded port 80. The appliance must serve a certificate from
// Pebble's CA, and the second boot must keep it. Its ECS source is unreachable, so
// both boots stand by, saying why on the status page: the lighter scenario. With the
// SeaBIOS VM's backup key and backup disk, its first boot restores that backup.
func acmeBoot(t *testing.T, ecsEnv, image string, backup *backupRun) {
	if backup == nil {
		t.Error("the SeaBIOS run left no backup to restore")
	}
	dir := t.TempDir()
	key, pub := sshKey(t, dir)
	web, hold := reservePort(t)
	pebble := pebbletest.Start(t, pebbletest.Options{TLSHosts: []string{"10.0.2.2"}, HTTPPort: web})
	clientCA := newCA(t, "e2e client CA")
	receiver := sentrytest.StartOn(t, "127.0.0.1:0") // the guest's 10.0.2.2
	envPath, iso := site(t, ecsEnv, dir, func(s string) string {
		s = withSSHKey(t, s, pub)
		s = withSources(t, s, unreachable, unreachable)
		s = withMonitoring(t, s, receiver)
		if backup != nil {
			s = replace(t, s, backupSection(t, s), backup.section)
		}
		// A client CA env.yml puts where ECS keeps its own, through extra.files.
		s = replace(t, s, "    client_certs_mandatory: false\n", "    client_certs_mandatory: true\n")
		s = replace(t, s, "  storage:\n", "  extra:\n    files:\n      - path: /data/ecs-ca/ca.cert.pem\n        owner: \"1000\"\n        permissions: \"0644\"\n        contents: |\n"+block(string(clientCA.pem), 10)+"  storage:\n")
		return replace(t, s, "    letsencrypt:\n      enabled: true\n",
			"    letsencrypt:\n      enabled: true\n      directory: "+pebble.Directory+"\n      email: ops@"+domain+"\n      root_ca: |\n"+block(string(pebble.RootCA), 8))
	})
	v := newVM(t, dir, image, iso, false, true, 22, 443)
	v.ports[80] = net.JoinHostPort("127.0.0.1", strconv.Itoa(web))
	v.held = append(v.held, hold)
	if backup != nil {
		v.extra = []string{backup.disk}
	}
	v.sshKey = key

	first := v.boot(t, "first", "standby")
	checkACME(t, first, pebble)
	checkClientCA(t, first, pebble, clientCA)
	checkMonitoring(t, first, receiver, envPath)
	if backup != nil {
		checkRestore(t, first, backup)
	}
	first.powerOff(t)
	second := v.boot(t, "second", "standby")
	checkACME(t, second, pebble)
	// Standing by changed nothing: the certificate was kept, no file rewritten.
	if runs := second.ssh(t, "appliance-agent state"); !regexp.MustCompile(`runs \(newest first\):\n\s+#\d+ \S+ unchanged`).MatchString(runs) {
		t.Errorf("the second boot was not recorded as unchanged:\n%s\nthe agent's lines of that boot:\n%s", runs, agentLines(second.serial))
	}
}

// checkClientCA: with client certificates mandatory, nginx refuses a request
// without one and answers one from the env's CA with the status page.
func checkClientCA(t testing.TB, b *booted, pebble *pebbletest.Pebble, clientCA *ca) {
	roots := pebble.Roots(t)
	if body, code, err := get(httpsClient(b.v.ports[443], roots, nil), "https://"+domain+"/"); err != nil || code != 400 {
		t.Errorf("https without a client certificate: %d %v, want 400\n%s", code, err, body)
	}
	if body, code, err := get(httpsClient(b.v.ports[443], roots, clientCA.pair(t, "e2e user")), "https://"+domain+"/"); err != nil || code != 503 || !strings.Contains(body, "Appliance Standby") {
		t.Errorf("https with a certificate of the env's CA: %d %v, want 503 and the status page\n%s", code, err, body)
	}
}

// unreachable is a git source nothing listens on (the host's port 1).
const unreachable = "http://10.0.2.2:1/ecs.git"

// checkACME: https serves a certificate for the domain that Pebble's CA issued, and
// status.json names its source.
func checkACME(t testing.TB, b *booted, pebble *pebbletest.Pebble) {
	st := b.status(t, "standby")
	if c, _ := st["certificate"].(map[string]any); c == nil || c["source"] != "acme" {
		t.Errorf("status.json certificate: %v", st["certificate"])
	}
	if msg, _ := st["message"].(string); !strings.Contains(msg, "no build of ECS to run") || !strings.Contains(msg, "fetching "+unreachable) {
		t.Errorf("status.json does not say why there is no application: %q", msg)
	}
	certs, err := handshake(b.v.ports[443], tls.VersionTLS12, tls.VersionTLS13)
	if err != nil {
		t.Fatalf("443: %v", err)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{DNSName: domain, Roots: pebble.Roots(t), Intermediates: inter}); err != nil {
		t.Errorf("the certificate on 443 (issuer %q) is not from Pebble for %s: %v", certs[0].Issuer, domain, err)
	}
}

// reservePort is a free port on 127.0.0.1, held by the listener returned until it
// is closed.
func reservePort(t testing.TB) (int, net.Listener) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().(*net.TCPAddr).Port, l
}
