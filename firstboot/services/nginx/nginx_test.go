package nginx

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/servicetest"
	"github.com/ethikkom/ecs-appliance/firstboot/services/tls"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// context is a tree with the certificate and the placeholder CA nginx needs.
func newContext(t *testing.T, edit func(string) string) *services.Context {
	testtool.Require(t, "/usr/sbin/nginx")
	c := servicetest.Context(t, edit, services.Facts{MemoryMB: 4096, Cores: 2})
	servicetest.Prepare(t, c, tls.Service{})
	servicetest.Prepare(t, c, Service{})
	return c
}

func TestRenders(t *testing.T) {
	for _, tc := range []struct {
		variant string
		edit    func(string) string
		crl     bool
	}{
		{"optional", nil, false},
		{"mandatory", func(s string) string { // and no metrics: no stub_status server
			s = strings.Replace(s, "exporter: true\n    server: true", "exporter: false\n    server: false", 1)
			return strings.Replace(s, "client_certs_mandatory: false", "client_certs_mandatory: true", 1)
		}, false},
		{"crl", nil, true},
	} {
		t.Run(tc.variant, func(t *testing.T) {
			c := newContext(t, tc.edit)
			if tc.crl {
				writeCRL(t, c, servicetest.Now.Add(30*24*time.Hour))
			}
			files, err := Service{}.Files(c)
			if err != nil {
				t.Fatal(err)
			}
			servicetest.Golden(t, tc.variant, files)
			servicetest.Checked(t, c.M, files)
			if _, err := os.Stat(c.M.Path(CAPath)); !tc.crl && err == nil {
				t.Errorf("the placeholder went into ECS's %s, which keeps ECS's bootstrap from making its CA", CAPath)
			}
		})
	}
}

// TestRejectedRenderKeepsTheOldFile: what nginx -t refuses never replaces a working
// configuration, and the error names the file.
func TestRejectedRenderKeepsTheOldFile(t *testing.T) {
	c := newContext(t, nil)
	files, err := Service{}.Files(c)
	if err != nil {
		t.Fatal(err)
	}
	good := files[0]
	if _, err := c.M.WriteFile(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	bad := good
	bad.Data = []byte(strings.Replace(string(good.Data), "ssl_session_tickets off;", "ssl_session_tickets maybe;", 1))
	_, err = c.M.WriteFile(context.Background(), bad)
	if err == nil || !strings.Contains(err.Error(), SitePath+": rejected, the old file stays") || !strings.Contains(err.Error(), "ssl_session_tickets") {
		t.Fatalf("bad render: %v", err)
	}
	if cur, _ := os.ReadFile(c.M.Path(SitePath)); string(cur) != string(good.Data) {
		t.Error("the rejected render replaced the working file")
	}
}

func TestCRLNotice(t *testing.T) {
	for _, tc := range []struct {
		next time.Duration
		want string
	}{
		{30 * 24 * time.Hour, ""},
		{2 * 24 * time.Hour, "then nginx rejects every client certificate"},
		{-time.Hour, "expired at"},
	} {
		c := newContext(t, nil)
		writeCRL(t, c, servicetest.Now.Add(tc.next))
		state, err := services.Configure(context.Background(), c, []services.Service{Service{}})
		if err != nil {
			t.Fatal(err)
		}
		if note := state[0].Note; tc.want == "" && note != "" || !strings.Contains(note, tc.want) {
			t.Errorf("CRL next update in %s: note %q, want %q", tc.next, note, tc.want)
		}
	}
}

// writeCRL makes a CA of its own with an empty CRL in /data/ecs-ca, as ECS would.
func writeCRL(t *testing.T, c *services.Context, next time.Time) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: servicetest.Now.Add(-time.Hour), NotAfter: servicetest.Now.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	crl, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{Number: big.NewInt(1),
		ThisUpdate: servicetest.Now.Add(-2 * time.Hour), NextUpdate: next}, ca, key)
	if err != nil {
		t.Fatal(err)
	}
	for path, block := range map[string]*pem.Block{CAPath: {Type: "CERTIFICATE", Bytes: der}, CRLPath: {Type: "X509 CRL", Bytes: crl}} {
		if _, err := c.M.WriteFile(context.Background(), machine.File{Path: path, Data: pem.EncodeToMemory(block)}); err != nil {
			t.Fatal(err)
		}
	}
}
