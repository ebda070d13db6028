package tls

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/servicetest"
)

func leaf(t *testing.T, c *services.Context) *x509.Certificate {
	data, err := os.ReadFile(c.M.Path(CertPath))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

func configure(t *testing.T, c *services.Context) services.State {
	t.Helper()
	st, err := services.Configure(context.Background(), c, []services.Service{Service{}})
	if err != nil {
		t.Fatal(err)
	}
	return st[0]
}

// TestSelfSignedIsKeptThenRenewed: without a pair in env.yml (and before ACME), a
// self-signed certificate for the domain, with the domain as SAN; the same one on the
// next run; a new one when less than 30 days are left.
func TestSelfSignedIsKeptThenRenewed(t *testing.T) {
	c := servicetest.Context(t, nil, services.Facts{})
	if st := configure(t, c); st.State != "changed" {
		t.Errorf("first run: %+v", st)
	}
	cert := leaf(t, c)
	if cert.Subject.CommonName != "ecs.example.org" || len(cert.DNSNames) != 1 || cert.DNSNames[0] != "ecs.example.org" {
		t.Errorf("self-signed certificate for %q %v", cert.Subject.CommonName, cert.DNSNames)
	}
	if fi, _ := os.Stat(c.M.Path(KeyPath)); fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", fi.Mode().Perm())
	}
	if c.Certificate == nil || c.Certificate.Source != SourceSelfSigned || !c.Certificate.NotAfter.Equal(cert.NotAfter) {
		t.Errorf("status certificate %+v", c.Certificate)
	}
	again := services.NewContext(c.M, c.Env, c.Facts, c.Now.Add(24*time.Hour))
	if st := configure(t, again); st.State != "configured" {
		t.Errorf("second run: %+v", st)
	}
	late := services.NewContext(c.M, c.Env, c.Facts, cert.NotAfter.Add(-10*24*time.Hour))
	if st := configure(t, late); st.State != "changed" || leaf(t, late).SerialNumber.Cmp(cert.SerialNumber) == 0 {
		t.Errorf("10 days before expiry: %+v, same certificate", st)
	}
}

// TestEnvPairWins: a key and certificate in env.yml are used as they are.
func TestEnvPairWins(t *testing.T) {
	first := servicetest.Context(t, nil, services.Facts{})
	configure(t, first)
	key, _ := os.ReadFile(first.M.Path(KeyPath))
	chain, _ := os.ReadFile(first.M.Path(CertPath))
	indent := func(s string) string { return "      " + strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n      ") }
	c := servicetest.Context(t, func(s string) string {
		return strings.Replace(s, "  ssl:\n", "  ssl:\n    key: |\n"+indent(string(key))+"\n    cert: |\n"+indent(string(chain))+"\n", 1)
	}, services.Facts{})
	configure(t, c)
	got, _ := os.ReadFile(c.M.Path(CertPath))
	if string(got) != string(chain) || c.Certificate.Source != SourceEnv {
		t.Errorf("env pair not installed: source %+v", c.Certificate)
	}
}
