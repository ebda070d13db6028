package generate

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
	"gopkg.in/yaml.v3"
)

const testDomain = "ecs.example.org"

var keyTypes = []KeyType{RSA3072, Ed25519}

// generated caches one New result per key type: RSA key generation takes seconds.
var generated struct {
	sync.Mutex
	out map[KeyType][]byte
}

func newEnv(t testing.TB, kt KeyType) []byte {
	t.Helper()
	generated.Lock()
	defer generated.Unlock()
	if out, ok := generated.out[kt]; ok {
		return out
	}
	out, err := New(Options{Domain: testDomain, KeyType: kt})
	if err != nil {
		t.Fatal(err)
	}
	if generated.out == nil {
		generated.out = map[KeyType][]byte{}
	}
	generated.out[kt] = out
	return out
}

func parse(t testing.TB, out []byte) *env.Env {
	t.Helper()
	e, warns, err := env.Parse("env.yml", out)
	if err != nil {
		t.Fatalf("env.Parse: %v\n%s", err, out)
	}
	for _, w := range warns {
		t.Log(w)
	}
	return e
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestNewLoads: the output is an env.yml that package env loads without errors,
// with the template's values, in the template's key order.
func TestNewLoads(t *testing.T) {
	for _, kt := range keyTypes {
		t.Run(kt.String(), func(t *testing.T) {
			out := newEnv(t, kt)
			if !bytes.HasPrefix(out, []byte("#cloud-config\n")) {
				t.Fatalf("first line is not #cloud-config")
			}
			e := parse(t, out)
			a := e.Appliance
			if a.Domain != testDomain || a.SSL.LetsEncrypt.Enabled == nil || !*a.SSL.LetsEncrypt.Enabled ||
				a.SSL.ClientCertsMandatory || !a.Storage.Ignore.Volatile || !a.Storage.Ignore.Data ||
				a.Backup.URL != "file:///volatile/ecs-backup-test/" || e.ECS.UserSwitcher.Enabled ||
				e.DisableRoot == nil || *e.DisableRoot || len(e.SSHAuthorizedKeys) != 0 {
				t.Errorf("unexpected values: %+v", a)
			}
			if !strings.Contains(e.ECS.Settings, "DOMAIN = '"+testDomain+"'") ||
				!strings.Contains(e.ECS.Settings, "# SENTRY_DSN") {
				t.Errorf("settings:\n%s", e.ECS.Settings)
			}
			if got, want := keys(e.Document.Content[0]), "ssh_deprecated_keys disable_root appliance ecs"; got != want {
				t.Errorf("top-level keys %q, want %q", got, want)
			}
			app := value(e.Document.Content[0], "appliance")
			if got, want := keys(app), "domain ssl storage dkim backup"; got != want {
				t.Errorf("appliance keys %q, want %q", got, want)
			}
			if got, want := keys(value(e.Document.Content[0], "ecs")), "userswitcher settings vault_encrypt vault_sign"; got != want {
				t.Errorf("ecs keys %q, want %q", got, want)
			}
		})
	}
}

func TestParseKeyType(t *testing.T) {
	for _, kt := range keyTypes {
		if got, err := ParseKeyType(kt.String()); err != nil || got != kt {
			t.Errorf("ParseKeyType(%q) = %v, %v", kt.String(), got, err)
		}
	}
	if _, err := ParseKeyType("dsa"); err == nil {
		t.Error("ParseKeyType(dsa) succeeded")
	}
}

// TestBadDomain: a name that is not a DNS name never reaches the Python settings.
func TestBadDomain(t *testing.T) {
	for _, d := range []string{"", "ecs", "ecs.example.org.", "-a.example.org", "a'b.example.org", "ecs example.org",
		"a..org", "bücher.example", strings.Repeat("a", 64) + ".org", "10.0.0.1", "1.5", "ecs.example.123"} {
		if _, err := New(Options{Domain: d, KeyType: Ed25519}); err == nil {
			t.Errorf("domain %q accepted", d)
		}
	}
	if _, err := New(Options{Domain: "xn--bcher-kva.example", KeyType: Ed25519}); err != nil {
		t.Errorf("IDN in xn-- form: %v", err)
	}
}

// TestCloudInitSchema: cloud-init 22.4 accepts the file as user-data, both without
// ssh keys (the key is then left out, as cloud-init rejects an empty list) and with.
func TestCloudInitSchema(t *testing.T) {
	ci := testtool.Require(t, "cloud-init")[0]
	cases := map[string][]byte{"plain": newEnv(t, Ed25519), "extra": newExtraEnv(t)}
	for name, out := range cases {
		t.Run(name, func(t *testing.T) {
			p := writeTemp(t, "user-data", out)
			res, err := exec.Command(ci, "schema", "--config-file", p).CombinedOutput()
			t.Logf("cloud-init schema:\n%s", res)
			if err != nil || !strings.Contains(string(res), "Valid cloud-config") {
				t.Fatalf("cloud-init schema: %v", err)
			}
		})
	}
}

// TestOpenPGPKeys: each key is a v4 secret key without passphrase, with the
// right user id, a signing primary key and an encryption subkey, and with neither
// v6 material nor AEAD preferences.
func TestOpenPGPKeys(t *testing.T) {
	for _, kt := range keyTypes {
		t.Run(kt.String(), func(t *testing.T) {
			e := parse(t, newEnv(t, kt))
			for uid, armored := range map[string]string{uidBackup: e.Appliance.Backup.Encrypt,
				uidMediaserver: e.ECS.VaultEncrypt, uidAuthority: e.ECS.VaultSign} {
				ents, err := openpgp.ReadArmoredKeyRing(strings.NewReader(armored))
				if err != nil || len(ents) != 1 {
					t.Fatalf("%s: %d keys, %v", uid, len(ents), err)
				}
				k := ents[0]
				id, ok := k.Identities[uid]
				if !ok || k.PrivateKey == nil || k.PrivateKey.Encrypted || k.PrimaryKey.Version != 4 || len(k.Subkeys) != 1 {
					t.Fatalf("%s: uid %v, version %d, %d subkeys", uid, ok, k.PrimaryKey.Version, len(k.Subkeys))
				}
				sig := id.SelfSignature
				if !sig.FlagSign || !sig.FlagCertify || sig.SEIPDv2 || len(sig.PreferredCipherSuites) != 0 || sig.Version != 4 {
					t.Errorf("%s: self-signature flags sign=%v certify=%v seipdv2=%v suites=%v", uid,
						sig.FlagSign, sig.FlagCertify, sig.SEIPDv2, sig.PreferredCipherSuites)
				}
				sub := k.Subkeys[0]
				if sub.PublicKey.Version != 4 || !sub.Sig.FlagEncryptStorage || !sub.Sig.FlagEncryptCommunications {
					t.Errorf("%s: subkey version %d, flags %+v", uid, sub.PublicKey.Version, sub.Sig)
				}
			}
		})
	}
}

// TestGnuPG: GnuPG 2.2 imports the three secret keys and encrypts to, decrypts
// with, signs with and verifies each of them; backups encrypted to ecs_backup are
// compressed.
func TestGnuPG(t *testing.T) {
	gpg := testtool.Require(t, "gpg")[0]
	for _, kt := range keyTypes {
		t.Run(kt.String(), func(t *testing.T) {
			e := parse(t, newEnv(t, kt))
			home, err := os.MkdirTemp("", "gpg") // short: gpg-agent's socket path is limited
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				kill := exec.Command("gpgconf", "--kill", "gpg-agent")
				kill.Env = append(os.Environ(), "GNUPGHOME="+home)
				_ = kill.Run()
				os.RemoveAll(home)
			})
			run := func(stdin []byte, args ...string) []byte {
				t.Helper()
				cmd := exec.Command(gpg, append([]string{"--batch", "--no-tty", "--trust-model", "always"}, args...)...)
				cmd.Env = append(os.Environ(), "GNUPGHOME="+home)
				cmd.Stdin = bytes.NewReader(stdin)
				var stdout, stderr bytes.Buffer
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
				if err := cmd.Run(); err != nil {
					t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
				}
				return stdout.Bytes()
			}
			for _, k := range []string{e.Appliance.Backup.Encrypt, e.ECS.VaultEncrypt, e.ECS.VaultSign} {
				run([]byte(k), "--import")
				if pk := string(run([]byte(k), "--list-packets")); strings.Count(pk, "version 4,") != 4 ||
					strings.Contains(pk, "version 5") || strings.Contains(pk, "version 6") {
					t.Errorf("packet versions:\n%s", pk)
				}
			}
			listing := string(run(nil, "--list-secret-keys", "--with-colons"))
			wantSec, wantSsb := ":1:", ":1:" // RSA
			if kt == Ed25519 {
				wantSec, wantSsb = ":22:", ":18:" // EdDSA, ECDH
			}
			for _, l := range strings.Split(listing, "\n") {
				f := strings.Split(l, ":")
				switch f[0] {
				case "sec":
					if !strings.Contains(l, wantSec) || !strings.Contains(f[11], "s") || !strings.Contains(f[11], "c") ||
						(kt == RSA3072 && f[2] != "3072") || (kt == Ed25519 && f[16] != "ed25519") {
						t.Errorf("secret key: %s", l)
					}
				case "ssb":
					if !strings.Contains(l, wantSsb) || f[11] != "e" ||
						(kt == RSA3072 && f[2] != "3072") || (kt == Ed25519 && f[16] != "cv25519") {
						t.Errorf("secret subkey: %s", l)
					}
				}
			}
			if strings.Count("\n"+listing, "\nsec:") != 3 || strings.Count(listing, "\nssb:") != 3 {
				t.Fatalf("want 3 secret keys with a subkey each:\n%s", listing)
			}

			plain := bytes.Repeat([]byte("ECS backup test data\n"), 50000) // 1 MB, compressible
			for _, uid := range []string{uidBackup, uidMediaserver, uidAuthority} {
				enc := run(plain, "-r", uid, "--encrypt")
				if uid == uidBackup && len(enc) > len(plain)/10 {
					t.Errorf("%s: %d bytes encrypted to %d: gpg did not compress", uid, len(plain), len(enc))
				}
				if dec := run(enc, "--decrypt"); !bytes.Equal(dec, plain) {
					t.Errorf("%s: decrypted text differs", uid)
				}
				signed := run([]byte("signed by "+uid), "--local-user", uid, "--sign")
				status := string(run(signed, "--status-fd", "1", "--decrypt"))
				if !strings.Contains(status, "[GNUPG:] GOODSIG") || !strings.Contains(status, uid) ||
					!strings.Contains(status, "[GNUPG:] VALIDSIG") {
					t.Errorf("%s: signature not verified:\n%s", uid, status)
				}
			}
		})
	}
}

// TestDKIM: the DKIM key is RSA 2048 in PEM, and the DNS how-to publishes its
// public half as TXT character-strings of at most 255 characters that join to
// the DKIM record.
func TestDKIM(t *testing.T) {
	out := newEnv(t, Ed25519)
	e := parse(t, out)
	block, _ := pem.Decode([]byte(e.Appliance.DKIM.Key))
	if block == nil || block.Type != "RSA PRIVATE KEY" {
		t.Fatal("appliance.dkim.key is not a PKCS #1 PEM key")
	}
	k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil || k.N.BitLen() != 2048 {
		t.Fatalf("DKIM key: %v", err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	want := "v=DKIM1; k=rsa; s=email; p=" + base64.StdEncoding.EncodeToString(der)

	// The record runs from the default._domainkey line to the closing parenthesis.
	text := string(out)
	start := strings.Index(text, "default._domainkey."+testDomain+".")
	end := start + strings.Index(text[start:], ")")
	if start < 0 || end < start {
		t.Fatal("no default._domainkey record in the DNS how-to")
	}
	strs := regexp.MustCompile(`"([^"]*)"`).FindAllStringSubmatch(text[start:end], -1)
	var joined strings.Builder
	for _, s := range strs {
		if len(s[1]) > 255 {
			t.Errorf("TXT string of %d characters", len(s[1]))
		}
		joined.WriteString(s[1])
	}
	if joined.String() != want {
		t.Errorf("TXT strings join to\n%s\nwant\n%s", joined.String(), want)
	}
	if !strings.Contains(text, "\n#   "+want+"\n") {
		t.Error("one-line form of the DKIM record missing")
	}
	for _, rec := range []string{`IN A    192.0.2.10`, `IN MX   10 ` + testDomain + `.`, `IN TXT  "v=spf1 a mx -all"`,
		`_dmarc.` + testDomain + `.`, `IN TXT  "v=DMARC1; p=quarantine"`, `IN PTR  ` + testDomain + `.`} {
		if !strings.Contains(text, rec) {
			t.Errorf("DNS how-to lacks %q", rec)
		}
	}
}

func TestDKIMTXTSplit(t *testing.T) {
	for _, n := range []int{0, 1, 252, 253, 254, 600} {
		pub := strings.Repeat("A", n)
		parts := dkimTXT(pub)
		for _, p := range parts {
			if len(p) == 0 || len(p) > 255 {
				t.Errorf("n=%d: part of %d characters", n, len(p))
			}
		}
		if strings.Join(parts, "") != dkimRecord(pub) {
			t.Errorf("n=%d: parts do not join to the record", n)
		}
	}
}

var djangoSecret = regexp.MustCompile(`(?m)^(SECRET_KEY|REGISTRATION_SECRET|PASSWORD_RESET_SECRET) = '([^']*)'$`)

// TestDjangoSecrets: the three secrets differ, carry 312 bits each, are plain
// base64 (no quote or backslash), and Python reads the settings to the same values.
func TestDjangoSecrets(t *testing.T) {
	settings := parse(t, newEnv(t, Ed25519)).ECS.Settings
	m := djangoSecret.FindAllStringSubmatch(settings, -1)
	if len(m) != 3 {
		t.Fatalf("found %d secrets in settings", len(m))
	}
	seen := map[string]bool{}
	for _, s := range m {
		raw, err := base64.StdEncoding.DecodeString(s[2])
		if err != nil || len(raw)*8 < 256 || len(s[2]) < 50 || strings.ContainsAny(s[2], `'"\`) {
			t.Errorf("%s: %d characters, %d bits, %v", s[1], len(s[2]), len(raw)*8, err)
		}
		if seen[s[2]] {
			t.Errorf("%s repeats another secret", s[1])
		}
		seen[s[2]] = true
	}

	py := "/usr/bin/python3"
	if _, err := os.Stat(py); err != nil {
		testtool.Missing(t, "/usr/bin/python3 not installed")
	}
	prog := "import sys\nns = {'SMTPD_CONFIG': {}}\nexec(sys.stdin.read(), ns)\n" +
		"print(ns['SECRET_KEY']); print(ns['REGISTRATION_SECRET']); print(ns['PASSWORD_RESET_SECRET']); print(ns['DOMAIN'])"
	cmd := exec.Command(py, "-c", prog)
	cmd.Stdin = strings.NewReader(settings)
	res, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 cannot run ecs.settings: %v", err)
	}
	if want := m[0][2] + "\n" + m[1][2] + "\n" + m[2][2] + "\n" + testDomain + "\n"; string(res) != want {
		t.Error("python3 reads different values from ecs.settings")
	}
}

// keys lists a mapping's keys in order.
func keys(n *yaml.Node) string {
	var ks []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		ks = append(ks, n.Content[i].Value)
	}
	return strings.Join(ks, " ")
}

// value is the value of key in a mapping, or an empty node.
func value(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return &yaml.Node{}
}
