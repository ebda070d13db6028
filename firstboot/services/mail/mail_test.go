package mail

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/env-tools/generate"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/servicetest"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

func TestRenders(t *testing.T) {
	testtool.Require(t, "postconf", "opendkim")
	for _, tc := range []struct {
		variant string
		edit    func(string) string
	}{
		{"signing", nil},
		{"unsigned", withoutDKIM},
	} {
		t.Run(tc.variant, func(t *testing.T) {
			c := servicetest.Context(t, tc.edit, services.Facts{})
			files, err := Service{}.Files(c)
			if err != nil {
				t.Fatal(err)
			}
			var rendered []machine.File
			for _, f := range files {
				if f.Path != DKIMKeyPath { // a secret, not a render
					rendered = append(rendered, f)
				}
			}
			servicetest.Golden(t, tc.variant, rendered)
			servicetest.Checked(t, c.M, files)
		})
	}
}

func withoutDKIM(s string) string {
	i := strings.Index(s, "  dkim:\n")
	j := strings.Index(s[i+1:], "\n  backup:")
	return s[:i] + s[i+1+j+1:]
}

// TestPostconfRejectsUnknownParameters: postconf exits 0 on them; the check does not.
func TestPostconfRejectsUnknownParameters(t *testing.T) {
	testtool.Require(t, "postconf")
	c := servicetest.Context(t, nil, services.Facts{})
	files, err := Service{}.Files(c)
	if err != nil {
		t.Fatal(err)
	}
	main := files[1]
	cand := filepath.Join(t.TempDir(), "main.cf")
	os.WriteFile(cand, append(main.Data, "smtpd_tls_sekurity_level = may\n"...), 0o644)
	if err := main.Check(context.Background(), c.M, cand); err == nil || !strings.Contains(err.Error(), "smtpd_tls_sekurity_level") {
		t.Errorf("check of a misspelt parameter: %v", err)
	}
}

// TestDKIMSignatureVerifies: opendkim with the rendered configuration signs a
// message, and dkimpy, an independent verifier, accepts it against the DNS record
// `ecs-env new` printed for the key, and rejects it with the body changed.
func TestDKIMSignatureVerifies(t *testing.T) {
	testtool.Require(t, "opendkim")
	doc, err := generate.New(generate.Options{Domain: "ecs.example.org", KeyType: generate.Ed25519})
	if err != nil {
		t.Fatal(err)
	}
	record := dnsRecord(t, doc)
	c := servicetest.Context(t, func(string) string { return string(doc) }, services.Facts{})
	if _, err := services.Configure(context.Background(), c, []services.Service{Service{}}); err != nil {
		t.Fatal(err)
	}
	// Signing mode of opendkim itself, with the configuration the appliance runs
	// (paths moved into the tree, which lives under /tmp).
	conf, _ := os.ReadFile(c.M.Path(OpenDKIMPath))
	conf = append(c.M.Localize(conf, DKIMKeyPath), "RequireSafeKeys no\nSyslog no\n"...)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "opendkim.conf"), conf, 0o600)
	msg := "From: ECS <noreply@ecs.example.org>\r\nTo: someone@example.net\r\nSubject: Sitzung\r\nDate: Tue, 01 Dec 2026 12:00:00 +0000\r\nMessage-ID: <1@ecs.example.org>\r\n\r\nDie Sitzung beginnt um 9 Uhr.\r\n"
	os.WriteFile(filepath.Join(dir, "msg.eml"), []byte(msg), 0o600)
	out, err := exec.Command("opendkim", "-x", filepath.Join(dir, "opendkim.conf"), "-t", filepath.Join(dir, "msg.eml")).CombinedOutput()
	if err != nil {
		t.Fatalf("opendkim -t: %v\n%s", err, out)
	}
	sig := signatureHeader(t, string(out))
	for _, want := range []string{"d=ecs.example.org", "s=default", "a=rsa-sha256", "c=relaxed/relaxed"} {
		if !strings.Contains(sig, want) {
			t.Errorf("signature lacks %s:\n%s", want, sig)
		}
	}
	signed := sig + msg
	if got := testtool.DKIMVerify(t, signed, record); got != "True" {
		t.Errorf("dkimpy does not verify the signed message: %s", got)
	}
	if got := testtool.DKIMVerify(t, strings.Replace(signed, "9 Uhr", "10 Uhr", 1), record); got != "False" {
		t.Errorf("dkimpy verifies a changed body: %s", got)
	}
}

// dnsRecord is the one-line TXT value of default._domainkey in the env's DNS how-to.
func dnsRecord(t *testing.T, doc []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(doc))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "#   v=DKIM1;"); ok {
			return "v=DKIM1;" + v
		}
	}
	t.Fatal("no DKIM record in the env's comments")
	return ""
}

// signatureHeader is the DKIM-Signature header opendkim -t prints, with CRLF ends.
func signatureHeader(t *testing.T, out string) string {
	i := strings.Index(out, "DKIM-Signature:")
	if i < 0 {
		t.Fatalf("opendkim printed no signature:\n%s", out)
	}
	lines := strings.Split(strings.TrimRight(out[i:], "\r\n"), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, "\r")
	}
	return strings.Join(lines, "\r\n") + "\r\n"
}
