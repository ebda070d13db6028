package bundle

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

func TestName(t *testing.T) {
	got := Name("ecs.example.org", time.Date(2026, 3, 7, 9, 5, 59, 0, time.UTC))
	if want := "ecs.example.org.env.2026-03-07_09.05.tar.gz.gpg"; got != want {
		t.Errorf("Name = %q, want %q", got, want)
	}
}

// gpgHome is a GnuPG home of its own; its agent is stopped when the test ends.
type gpgHome struct {
	t   *testing.T
	dir string
}

func newGPGHome(t *testing.T) *gpgHome {
	t.Helper()
	testtool.Require(t, "gpg", "gpgconf")
	h := &gpgHome{t, t.TempDir()}
	t.Cleanup(func() { exec.Command("gpgconf", "--homedir", h.dir, "--kill", "gpg-agent").Run() })
	return h
}

// gpg runs gpg in h with stdin and returns its standard output.
func (h *gpgHome) gpg(stdin []byte, args ...string) []byte {
	h.t.Helper()
	cmd := exec.Command("gpg", append([]string{"--homedir", h.dir, "--batch", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		h.t.Fatalf("gpg %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// genKey runs `gpg [pre...] --quick-gen-key uid args...`, optionally adds a
// subkey, and returns the new key's fingerprint.
func (h *gpgHome) genKey(pre []string, uid string, args []string, subkey ...string) string {
	h.t.Helper()
	h.gpg(nil, append(append(pre, "--quick-gen-key", uid), args...)...)
	var fpr string
	for l := range strings.SplitSeq(string(h.gpg(nil, "--with-colons", "--list-keys", "="+uid)), "\n") {
		if f := strings.Split(l, ":"); f[0] == "fpr" {
			fpr = f[9]
			break
		}
	}
	if fpr == "" {
		h.t.Fatalf("no fingerprint for %s", uid)
	}
	if len(subkey) > 0 {
		h.gpg(nil, append([]string{"--quick-add-key", fpr}, subkey...)...)
	}
	return fpr
}

func (h *gpgHome) export(fpr string) []byte {
	h.t.Helper()
	return h.gpg(nil, "--armor", "--export", fpr)
}

// goKey generates a key with go-crypto that prefers AES-256, as GnuPG's keys do.
func goKey(t *testing.T, uid string, cfg packet.Config) *openpgp.Entity {
	t.Helper()
	cfg.DefaultCipher = packet.CipherAES256
	e, err := openpgp.NewEntity(uid, "", uid+"@example.org", &cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func armored(t *testing.T, blockType string, serialize func(w *bytes.Buffer) error) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, blockType, nil)
	if err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	if err := serialize(&raw); err != nil {
		t.Fatal(err)
	}
	w.Write(raw.Bytes())
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("\n")
	return buf.Bytes()
}

func publicArmor(t *testing.T, es ...*openpgp.Entity) []byte {
	return armored(t, openpgp.PublicKeyType, func(w *bytes.Buffer) error {
		for _, e := range es {
			if err := e.Serialize(w); err != nil {
				return err
			}
		}
		return nil
	})
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSealDecryptsWithGnuPG seals one bundle to GnuPG-made and go-crypto-made
// RSA 3072 and curve25519 keys, read from one gpgkeys.txt, and has each recipient
// alone decrypt it with gpg and unpack it with tar.
func TestSealDecryptsWithGnuPG(t *testing.T) {
	testtool.Require(t, "gpg", "tar")
	type recipient struct {
		name string
		home *gpgHome
	}
	var recipients []recipient
	var keyring bytes.Buffer
	keyring.WriteString("Ärztekammer: keys of the people who may restore this appliance\n")

	rsaHome := newGPGHome(t)
	fpr := rsaHome.genKey(nil, "GnuPG RSA <gpg-rsa@example.org>", []string{"rsa3072", "sign,cert", "never"}, "rsa3072", "encr", "never")
	keyring.Write(rsaHome.export(fpr))
	recipients = append(recipients, recipient{"gpg rsa3072", rsaHome})

	edHome := newGPGHome(t)
	fpr = edHome.genKey(nil, "GnuPG 25519 <gpg-25519@example.org>", []string{"future-default"})
	keyring.Write(edHome.export(fpr))
	recipients = append(recipients, recipient{"gpg ed25519/cv25519", edHome})

	// Both go-crypto keys go into one armored block, as `gpg --export -a A B` makes.
	goRSA := goKey(t, "go-rsa", packet.Config{Algorithm: packet.PubKeyAlgoRSA, RSABits: 3072})
	go25519 := goKey(t, "go-25519", packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519})
	keyring.Write(publicArmor(t, goRSA, go25519))
	for _, e := range []*openpgp.Entity{goRSA, go25519} {
		h := newGPGHome(t)
		h.gpg(armored(t, openpgp.PrivateKeyType, func(w *bytes.Buffer) error { return e.SerializePrivate(w, nil) }), "--import")
		recipients = append(recipients, recipient{"go-crypto " + e.PrimaryIdentity().UserId.Name, h})
	}

	keys, err := ReadRecipients(&keyring, "gpgkeys.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 4 {
		t.Fatalf("read %d keys, want 4", len(keys))
	}

	files := []File{
		{"env.yml", []byte("#cloud-config\necs:\n  secret_key: s3cr3t\n")},
		{"env.yml.pdf", randomBytes(t, 70_000)},
		{"env-cidata.iso", randomBytes(t, 300_000)},
	}
	now := time.Now()
	var sealed bytes.Buffer
	if err := Seal(&sealed, keys, files, now); err != nil {
		t.Fatal(err)
	}
	if sealed.Len() == 0 || sealed.Bytes()[0]&0x80 == 0 {
		t.Fatal("bundle is not binary OpenPGP")
	}
	bundle := filepath.Join(t.TempDir(), Name("ecs.example.org", now))
	if err := os.WriteFile(bundle, sealed.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, r := range recipients {
		t.Run(r.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "env.tar.gz")
			status := string(r.home.gpg(nil, "--status-fd", "1", "--output", out, "--decrypt", bundle))
			// DECRYPTION_INFO <mdc_method> <sym_algo>: 2 = SHA-1 MDC (SEIPD v1), 9 = AES-256.
			if !strings.Contains(status, "[GNUPG:] DECRYPTION_INFO 2 9") || !strings.Contains(status, "[GNUPG:] DECRYPTION_OKAY") {
				t.Errorf("gpg status lacks SEIPDv1/MDC with AES-256 or DECRYPTION_OKAY:\n%s", status)
			}
			checkTar(t, out, files, now)
		})
	}
}

func checkTar(t *testing.T, archive string, files []File, now time.Time) {
	t.Helper()
	list, err := exec.Command("tar", "tzf", archive).CombinedOutput()
	if err != nil {
		t.Fatalf("tar tzf: %v\n%s", err, list)
	}
	var want []string
	for _, f := range files {
		want = append(want, f.Name)
	}
	if got := strings.Fields(string(list)); !slices.Equal(got, want) {
		t.Errorf("tar lists %q, want %q", got, want)
	}
	dir := t.TempDir()
	if out, err := exec.Command("tar", "xzf", archive, "-C", dir).CombinedOutput(); err != nil {
		t.Fatalf("tar xzf: %v\n%s", err, out)
	}
	for _, f := range files {
		p := filepath.Join(dir, f.Name)
		got, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, f.Data) {
			t.Errorf("%s differs after extraction", f.Name)
		}
		st, _ := os.Stat(p)
		if st.Mode().Perm() != 0o600 || !st.ModTime().Equal(now.Truncate(time.Second)) {
			t.Errorf("%s: mode %v, mtime %v; want 0600, %v", f.Name, st.Mode().Perm(), st.ModTime(), now.Truncate(time.Second))
		}
	}
}

// TestUnusableGnuPGKeysRefused reads each bad key next to a good one: the error
// names the bad key by fingerprint and user id, and says why.
func TestUnusableGnuPGKeysRefused(t *testing.T) {
	h := newGPGHome(t)
	good := goKey(t, "good", packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519})
	goodFPR := fmt.Sprintf("%X", good.PrimaryKey.Fingerprint)

	revoked := h.genKey(nil, "Revoked <revoked@example.org>", []string{"future-default"})
	// gpg stores a revocation certificate for every new key, its armor line
	// disabled by a leading ':' so it is not imported by accident.
	cert, err := os.ReadFile(filepath.Join(h.dir, "openpgp-revocs.d", revoked+".rev"))
	if err != nil {
		t.Fatal(err)
	}
	h.gpg(bytes.Replace(cert, []byte(":-----BEGIN"), []byte("-----BEGIN"), 1), "--import")

	for _, tc := range []struct {
		uid, fpr, why string
	}{
		{"Expired <expired@example.org>", h.genKey([]string{"--faked-system-time", "20200101T000000"}, "Expired <expired@example.org>", []string{"future-default", "default", "1y"}), "expired on 2020-12-31"},
		{"Revoked <revoked@example.org>", revoked, "is revoked"},
		{"Sign Only <sign@example.org>", h.genKey(nil, "Sign Only <sign@example.org>", []string{"ed25519", "sign", "never"}), "no usable encryption key"},
	} {
		t.Run(tc.uid, func(t *testing.T) {
			in := append(publicArmor(t, good), h.export(tc.fpr)...)
			_, err := ReadRecipients(bytes.NewReader(in), "gpgkeys.txt")
			if err == nil {
				t.Fatal("accepted")
			}
			for _, want := range []string{"gpgkeys.txt", tc.fpr, tc.uid, tc.why} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
			if strings.Contains(err.Error(), goodFPR) {
				t.Errorf("error names the good key: %v", err)
			}
		})
	}
}

func TestUnusableGoKeysRefused(t *testing.T) {
	ed := packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519}

	subRevoked := goKey(t, "subkey-revoked", ed)
	if err := subRevoked.RevokeSubkey(&subRevoked.Subkeys[0], packet.KeyRetired, "", nil); err != nil {
		t.Fatal(err)
	}
	v6 := goKey(t, "v6", packet.Config{Algorithm: packet.PubKeyAlgoEd25519, V6Keys: true})
	secret := goKey(t, "secret", ed)
	var secretBin bytes.Buffer
	if err := secret.SerializePrivate(&secretBin, nil); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		in   []byte
		why  string
	}{
		{"subkey revoked", publicArmor(t, subRevoked), fmt.Sprintf("%X", subRevoked.PrimaryKey.Fingerprint) + ` "subkey-revoked <subkey-revoked@example.org>": has no usable encryption key`},
		{"v6", publicArmor(t, v6), "is a v6 key"},
		{"binary secret key", secretBin.Bytes(), "is a secret key"},
		{"armored secret key", armored(t, openpgp.PrivateKeyType, func(w *bytes.Buffer) error { return secret.SerializePrivate(w, nil) }), `armored "PGP PRIVATE KEY BLOCK" block`},
		{"empty", nil, "no public keys"},
		{"no keys in text", []byte("alice@example.org\nbob@example.org\n"), "no public keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadRecipients(bytes.NewReader(tc.in), "gpgkeys.txt")
			if err == nil || !strings.Contains(err.Error(), tc.why) {
				t.Errorf("err = %v, want one containing %q", err, tc.why)
			}
		})
	}
}

func TestReadRecipientsBinary(t *testing.T) {
	ed := packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519}
	a, b := goKey(t, "a", ed), goKey(t, "b", ed)
	var bin bytes.Buffer
	for _, e := range []*openpgp.Entity{a, b} {
		if err := e.Serialize(&bin); err != nil {
			t.Fatal(err)
		}
	}
	keys, err := ReadRecipients(&bin, "keys.gpg")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].PrimaryKey.KeyId != a.PrimaryKey.KeyId || keys[1].PrimaryKey.KeyId != b.PrimaryKey.KeyId {
		t.Errorf("read %d keys, want a and b in order", len(keys))
	}
}

func TestSealRefuses(t *testing.T) {
	ed := packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Curve: packet.Curve25519}
	key := goKey(t, "k", ed)
	signOnly := goKey(t, "sign-only", ed)
	signOnly.Subkeys = nil
	now := time.Now()
	for _, tc := range []struct {
		name  string
		keys  openpgp.EntityList
		files []File
		why   string
	}{
		{"no recipients", nil, []File{{"env.yml", []byte("x")}}, "no recipients"},
		{"sign-only recipient", openpgp.EntityList{key, signOnly}, []File{{"env.yml", []byte("x")}}, fmt.Sprintf("%X", signOnly.PrimaryKey.Fingerprint)},
		{"path in name", openpgp.EntityList{key}, []File{{"../env.yml", []byte("x")}}, "bad file name"},
		{"duplicate name", openpgp.EntityList{key}, []File{{"env.yml", []byte("x")}, {"env.yml", []byte("y")}}, "given twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := Seal(&out, tc.keys, tc.files, now)
			if err == nil || !strings.Contains(err.Error(), tc.why) {
				t.Errorf("err = %v, want one containing %q", err, tc.why)
			}
			if out.Len() != 0 {
				t.Errorf("wrote %d bytes before refusing", out.Len())
			}
		})
	}
}
