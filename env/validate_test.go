package env

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// indent prefixes every line of a PEM block for a YAML literal at that depth.
func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n"+prefix) + "\n"
}

func selfSigned(t *testing.T, cn string) (keyPEM, certPEM string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{cn}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(k)
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})),
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

func withSSL(t *testing.T, key, cert string) []byte {
	return edit(t, "    client_certs_mandatory: false\n",
		"    client_certs_mandatory: false\n    key: |\n"+indent(key, "      ")+"    cert: |\n"+indent(cert, "      "))
}

func TestSSLKeyMustMatchCert(t *testing.T) {
	key, cert := selfSigned(t, "ecs.example.org")
	if _, _, err := Parse("env.yml", withSSL(t, key, cert)); err != nil {
		t.Fatalf("matching pair refused: %v", err)
	}
	otherKey, _ := selfSigned(t, "ecs.example.org")
	wantError(t, withSSL(t, otherKey, cert), "env.yml:15:10: appliance.ssl.key and appliance.ssl.cert: tls: private key does not match public key")
	wantError(t, edit(t, "    client_certs_mandatory: false\n", "    client_certs_mandatory: false\n    cert: x\n"),
		"appliance.ssl.cert is set but appliance.ssl.key is not")
}

func TestOpenPGPKeysChecked(t *testing.T) {
	s := readFixture(t, "template-env.yml")
	start := strings.Index(s, "  vault_sign: |\n")
	base := s[:start]
	cases := map[string]string{
		"not a key":            "  vault_sign: |\n      hello\n",
		"public key only":      "  vault_sign: |\n" + indent(publicOnly(t), "      "),
		"passphrase protected": "  vault_sign: |\n" + indent(protected(t), "      "),
	}
	wants := map[string]string{
		"not a key":            "ecs.vault_sign is not an ASCII-armored OpenPGP key",
		"public key only":      "ecs.vault_sign is a public key; the appliance needs the secret key",
		"passphrase protected": "ecs.vault_sign is protected by a passphrase",
	}
	for name, tail := range cases {
		t.Run(name, func(t *testing.T) {
			wantError(t, []byte(base+tail), wants[name])
		})
	}
}

func newEntity(t *testing.T) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity("ecs_authority", "", "ecs_authority", nil)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func armored(t *testing.T, blockType string, write func(w *strings.Builder) error) string {
	t.Helper()
	var raw strings.Builder
	if err := write(&raw); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	w, _ := armor.Encode(&out, blockType, nil)
	w.Write([]byte(raw.String()))
	w.Close()
	return out.String() + "\n"
}

func publicOnly(t *testing.T) string {
	e := newEntity(t)
	return armored(t, openpgp.PublicKeyType, func(w *strings.Builder) error { return e.Serialize(w) })
}

func protected(t *testing.T) string {
	e := newEntity(t)
	if err := e.EncryptPrivateKeys([]byte("passphrase"), nil); err != nil {
		t.Fatal(err)
	}
	return armored(t, openpgp.PrivateKeyType, func(w *strings.Builder) error { return e.SerializePrivateWithoutSigning(w, nil) })
}

func TestValueChecks(t *testing.T) {
	cases := []struct{ old, new, want string }{
		{"  domain: ecs.example.org", "  domain: ecs", `env.yml:9:11: appliance.domain must be a fully qualified domain name`},
		{"  domain: ecs.example.org", "  domain: ecs_1.example.org", `appliance.domain must be a DNS name: label 1 of 3 is not letters, digits and inner hyphens`},
		{"  domain: ecs.example.org", "  domain: 10.0.0.1", `env.yml:9:11: appliance.domain must be a domain name, not an IP address`},
		{"  domain: ecs.example.org", `  domain: "2001:db8::1"`, `appliance.domain must be a domain name, not an IP address`},
		{"  domain: ecs.example.org", "  domain: 1.5", `env.yml:9:11: appliance.domain must end in a top-level domain that is not all digits`},
		{"  domain: ecs.example.org", "  domain: ecs.example.123", `appliance.domain must end in a top-level domain that is not all digits`},
		{"      - path: /root/.ssh/config", "      - path: root/.ssh/config", `appliance.extra.files.0.path must be an absolute path`},
		{`        permissions: "0600"`, `        permissions: "rw-------"`, `env.yml:29:22: appliance.extra.files.0.permissions must be an octal mode`},
		{"        owner: root:root", "        owner: root root", `appliance.extra.files.0.owner must be user or user:group`},
		{"    oncalendar: Sun *-*-* 06:30:00", "    oncalendar: Sun *-*-* 25:30:00", `env.yml:32:17: appliance.update.oncalendar is not a systemd calendar expression: the hour must be * or numbers from 0 to 23`},
		{"    url: file:///volatile/ecs-backup-test/", "    url: smb://host/share", `appliance.backup.url: the scheme is not a duplicity backend`},
		{"    url: file:///volatile/ecs-backup-test/", "    url: /volatile/backup", "appliance.backup.url must be a duplicity URL"},
		{"-----BEGIN PRIVATE KEY-----\n", "-----BEGIN PRIVATE KEY-----\n        !!\n", ""},
	}
	for _, c := range cases {
		data := edit(t, c.old, c.new)
		if c.want == "" {
			wantError(t, data, "appliance.dkim.key is not a PEM private key")
			continue
		}
		wantError(t, data, c.want)
	}
}

func TestStorageSetupSchema(t *testing.T) {
	good := "  storage:\n    ignore: {data: false, volatile: false}\n    setup:\n      disks:\n" +
		"        - device: /dev/vdb\n          wipe: false\n          partitions:\n" +
		"            - {label: ecs-data, size: 70%, format: ext4}\n            - {label: ecs-volatile, size: rest}\n"
	s := readFixture(t, "template-env.yml")
	i, j := strings.Index(s, "  storage:\n"), strings.Index(s, "  dkim:\n")
	e, _, err := Parse("env.yml", []byte(s[:i]+good+s[j:]))
	if err != nil {
		t.Fatal(err)
	}
	parts := e.Appliance.Storage.Setup.Disks[0].Partitions
	if parts[0].Size.Percent != 70 || !parts[1].Size.Rest || parts[1].Format != "ext4" {
		t.Errorf("partitions %+v", parts)
	}
	bad := strings.Replace(good, "size: 70%", "size: 170%", 1)
	wantError(t, []byte(s[:i]+bad+s[j:]), `env.yml:40:39: appliance.storage.setup.disks.0.partitions.0.size: a percentage must be 1% to 100%`)
	bad = strings.Replace(good, "{label: ecs-data, size: 70%", "{label: ecs-data, size: rest", 1)
	wantError(t, []byte(s[:i]+bad+s[j:]), "only the last partition can take the rest of the disk")
	bad = strings.Replace(good, "size: rest}", "size: rest, format: xfs}", 1)
	wantError(t, []byte(s[:i]+bad+s[j:]), `appliance.storage.setup.disks.0.partitions.1.format must be ext4 or swap`)
}

// TestCalendarAgreesWithSystemd checks CheckCalendar against systemd's own parser.
func TestCalendarAgreesWithSystemd(t *testing.T) {
	testtool.Require(t, "systemd-analyze")
	exprs := []string{
		"*-*-* 06:30:00", "Sun *-*-* 06:30:00", "daily", "weekly", "Mon..Fri 22:30", "Mon-Fri 22:30",
		"Sat,Sun 10:00", "*-*-1 00:00", "2026-01-01", "*:0/15", "*-*~1 03:00", "12-24 18:00:00",
		"Mon *-*-* 06:30:00 UTC", "*-*-* 06:30:00 Europe/Vienna", "quarterly", "@1700000000",
		"*-*-* 06:30:00.5", "1,15 10:00", "Sun 06:30", "*-1/2-1 0:0",
		// invalid
		"", "never", "Sun *-*-* 25:30:00", "Sunday at 6", "*-13-01", "Fun 10:00", "06:61", "*-*-* 06:30:00 06:30",
		"2026-01-01-01", "Mon..Fry", "*:0/0", "1969-01-01",
	}
	for _, x := range exprs {
		ours := CheckCalendar(x) == nil
		theirs := exec.Command("systemd-analyze", "calendar", x).Run() == nil
		if x == "" {
			theirs = false // systemd-analyze with an empty argument prints usage
		}
		if ours != theirs {
			t.Errorf("%q: CheckCalendar valid=%v, systemd-analyze valid=%v", x, ours, theirs)
		}
	}
}

// TestValueErrorsDoNotRepeatValues: a bad value is named by its key and position, never
// quoted (issue 10: values may be secrets, and messages reach logs and status pages).
func TestValueErrorsDoNotRepeatValues(t *testing.T) {
	const marker = "s3cr3t"
	const ignore = "  storage:\n    ignore:\n      volatile: true\n      data: true\n"
	storage := "  storage:\n    setup:\n      disks:\n        - device: s3cr3t\n          partitions:\n" +
		"            - {label: s3cr3t-is-too-long-a-label, format: s3cr3t}\n" +
		"            - {label: s3cr3t}\n            - {label: s3cr3t, format: s3cr3t}\n" +
		"      format: {/dev/vdc: {fstype: s3cr3t}}\n"
	cases := [][2]string{
		{"  domain: ecs.example.org", "  domain: s3cr3t_1.example.org"},
		{"  domain: ecs.example.org", "  domain: s3cr3t"},
		{"      - path: /root/.ssh/config", "      - path: s3cr3t/x"},
		{`        permissions: "0600"`, `        permissions: "s3cr3t"`},
		{"        owner: root:root", "        owner: s3cr3t root"},
		{"    oncalendar: Sun *-*-* 06:30:00", "    oncalendar: s3cr3t 06:30"},
		{"    oncalendar: Sun *-*-* 06:30:00", "    oncalendar: Sun s3cr3t-1-1"},
		{"    oncalendar: Sun *-*-* 06:30:00", "    oncalendar: Sun *-*-* 0/s3cr3t:00"},
		{"    url: file:///volatile/ecs-backup-test/", "    url: s3cr3t://host/share"},
		{"  dkim:\n", "  cluster: {bind: s3cr3t, join: [s3cr3t]}\n  dkim:\n"},
		{ignore, storage},
		{ignore, strings.Replace(storage, "format: s3cr3t}", "size: s3cr3t%}", 1)},
		{ignore, strings.Replace(storage, "format: s3cr3t}", "size: 12s3cr3t}", 1)},
	}
	for _, c := range cases {
		data := edit(t, c[0], c[1])
		errs := strings.Join(parseErrors(t, data), "\n")
		if strings.Contains(errs, marker) {
			t.Errorf("%q: an error repeats the value:\n%s", c[1], errs)
		}
	}
}

func TestPDFAS(t *testing.T) {
	pin := "tomcat:9.0-jre8@sha256:" + strings.Repeat("ab", 32)
	e, warns, err := Parse("env.yml", edit(t, "  userswitcher:\n", "  pdfas:\n    base: "+pin+"\n  userswitcher:\n"))
	if err != nil {
		t.Fatal(err)
	}
	if e.ECS.PDFAS.Base != pin || e.ECS.PDFAS.War.URL != DefaultPDFASWarURL || e.ECS.PDFAS.Config.SHA256 != DefaultPDFASConfigSHA256 {
		t.Errorf("pdfas not read with its default downloads: %+v", e.ECS.PDFAS)
	}
	for _, w := range warns {
		if strings.Contains(w.String(), "pdfas") {
			t.Errorf("warning with pdf-as set: %v", w)
		}
	}
	// Without a base pdf-as is off, which env check says.
	_, warns, err = Parse("env.yml", edit(t, "  userswitcher:\n", "  userswitcher:\n"))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, w := range warns {
		found = found || strings.Contains(w.String(), "ecs.pdfas.base is not set: ECS runs without pdf-as")
	}
	if !found {
		t.Errorf("no warning that pdf-as is off: %v", warns)
	}
	for _, c := range []struct{ pdfas, want string }{
		{"    base: tomcat:9.0-jre8\n", "env.yml:106:11: ecs.pdfas.base must be a Tomcat image pinned by its image ID"},
		{"    base: tomcat@sha256:abc\n", "ecs.pdfas.base must be a Tomcat image pinned by its image ID"},
		{"    base: " + pin + "\n    war:\n      url: https://mirror.example.org/pdf-as-web.war\n",
			"env.yml:108:7: ecs.pdfas.war.sha256 must be the file's SHA-256"},
		{"    base: " + pin + "\n    config:\n      url: ftp://mirror.example.org/c.zip\n      sha256: " + strings.Repeat("0", 64) + "\n",
			"env.yml:108:12: ecs.pdfas.config.url must be an http:// or https:// URL"},
	} {
		wantError(t, edit(t, "  userswitcher:\n", "  pdfas:\n"+c.pdfas+"  userswitcher:\n"), c.want)
	}
}
