package acme_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ethikkom/ecs-appliance/firstboot/acme"
	"github.com/ethikkom/ecs-appliance/internal/pebbletest"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

const domain = "e2e.example.org" // Pebble's DNS answers every name with 127.0.0.1

// tokenServed is an access-log line of nginx serving an ACME token.
var tokenServed = regexp.MustCompile(`"GET /\.well-known/acme-challenge/[A-Za-z0-9_-]{20,} HTTP/1\.1" 200 `)

// TestObtainAndRenew gets a certificate from a real Pebble whose validation
// authority fetches the http-01 token from a real nginx serving the webroot, then
// checks the renewal rules against Pebble's renewal info and renews.
func TestObtainAndRenew(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	env := startPebble(t)
	cfg := env.cfg

	cert1, err := acme.Obtain(ctx, cfg)
	if err != nil {
		t.Fatalf("first Obtain: %v", err)
	}
	leaf1 := env.checkCertificate(t, cert1)
	t.Logf("first certificate (with registration) after %v", time.Since(start).Round(time.Millisecond))

	for name, want := range map[string]os.FileMode{"": 0o700, acme.AccountKeyFile: 0o600, acme.RegistrationFile: 0o600} {
		st, err := os.Stat(filepath.Join(cfg.AccountDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s/%s: mode %o, want %o", cfg.AccountDir, name, got, want)
		}
	}
	regBefore := readFile(t, filepath.Join(cfg.AccountDir, acme.RegistrationFile))
	keyBefore := readFile(t, filepath.Join(cfg.AccountDir, acme.AccountKeyFile))
	var reg struct {
		Directory string
		Account   struct {
			Status     string
			AccountURL string
		}
	}
	if err := json.Unmarshal(regBefore, &reg); err != nil {
		t.Fatal(err)
	}
	if reg.Directory != cfg.Directory || reg.Account.Status != "valid" || !strings.HasPrefix(reg.Account.AccountURL, "https://") {
		t.Errorf("registration file: %s", regBefore)
	}

	// nginx, not some other route, served the token to Pebble's validation authority.
	if log := string(readFile(t, env.accessLog)); !tokenServed.MatchString(log) {
		t.Errorf("nginx access log shows no served challenge token:\n%s", log)
	}
	tokens, err := os.ReadDir(filepath.Join(cfg.Webroot, ".well-known", "acme-challenge"))
	if err != nil || len(tokens) != 0 {
		t.Errorf("challenge tokens left in the webroot: %v %v", tokens, err)
	}

	now := time.Now()
	if due, reason, err := acme.Due(ctx, cfg, cert1.ChainPEM, now); err != nil || due || !strings.Contains(reason, "renewal window starts") {
		t.Errorf("Due(fresh, now) = %v, %q, %v; want false with Pebble's window", due, reason, err)
	}
	if due, reason, err := acme.Due(ctx, cfg, cert1.ChainPEM, cert1.NotAfter.Add(-10*24*time.Hour)); err != nil || !due || !strings.Contains(reason, "less than") {
		t.Errorf("Due(10 days left) = %v, %q, %v; want true by the 30-day rule", due, reason, err)
	}

	// The server's window decides while far more than 30 days are left.
	windowStart := now.Add(10 * 24 * time.Hour).UTC().Truncate(time.Second)
	env.pebble.SetRenewalWindow(t, leaf1, windowStart, windowStart.Add(24*time.Hour))
	if due, reason, err := acme.Due(ctx, cfg, cert1.ChainPEM, windowStart.Add(-time.Hour)); err != nil || due {
		t.Errorf("Due(before the set window) = %v, %q, %v; want false", due, reason, err)
	}
	if due, reason, err := acme.Due(ctx, cfg, cert1.ChainPEM, windowStart.Add(time.Hour)); err != nil || !due || !strings.Contains(reason, "renewal window started") {
		t.Errorf("Due(inside the set window) = %v, %q, %v; want true by renewal info", due, reason, err)
	}

	// No server at all: the 30-day rule alone decides, and says why.
	gone := cfg
	gone.Directory = "https://" + testtool.FreeAddress(t) + "/dir"
	if due, reason, err := acme.Due(ctx, gone, cert1.ChainPEM, now); err != nil || due || !strings.Contains(reason, "renewal info unavailable") {
		t.Errorf("Due(no server) = %v, %q, %v; want false, renewal info unavailable", due, reason, err)
	}
	if due, _, err := acme.Due(ctx, gone, cert1.ChainPEM, cert1.NotAfter.Add(-time.Hour)); err != nil || !due {
		t.Errorf("Due(no server, 1 hour left) = %v, %v; want true", due, err)
	}

	renewStart := time.Now()
	cert2, err := acme.Obtain(ctx, cfg)
	if err != nil {
		t.Fatalf("renewing Obtain: %v", err)
	}
	t.Logf("renewal after %v", time.Since(renewStart).Round(time.Millisecond))
	leaf2 := env.checkCertificate(t, cert2)
	if leaf2.SerialNumber.Cmp(leaf1.SerialNumber) == 0 {
		t.Errorf("renewal kept serial %x", leaf1.SerialNumber)
	}
	if bytes.Equal(cert1.KeyPEM, cert2.KeyPEM) {
		t.Error("renewal reused the certificate key")
	}
	if !bytes.Equal(readFile(t, filepath.Join(cfg.AccountDir, acme.RegistrationFile)), regBefore) {
		t.Error("renewal rewrote the registration: registered again")
	}
	if !bytes.Equal(readFile(t, filepath.Join(cfg.AccountDir, acme.AccountKeyFile)), keyBefore) {
		t.Error("renewal replaced the account key")
	}
	t.Logf("whole test %v", time.Since(start).Round(time.Millisecond))
}

// TestErrors checks that failures name the domain and directory and never carry
// key material, with a server that is not there.
func TestErrors(t *testing.T) {
	ctx := context.Background()
	cfg := acme.Config{
		Domain:     domain,
		Directory:  "https://" + testtool.FreeAddress(t) + "/dir",
		AccountDir: filepath.Join(t.TempDir(), "acme"),
		Webroot:    t.TempDir(),
	}
	_, err := acme.Obtain(ctx, cfg)
	if err == nil {
		t.Fatal("Obtain from no server succeeded")
	}
	if msg := err.Error(); !strings.Contains(msg, domain) || !strings.Contains(msg, cfg.Directory) || strings.Contains(msg, "PRIVATE KEY") {
		t.Errorf("error %q should name %s and %s and no key", msg, domain, cfg.Directory)
	}
	if st, err := os.Stat(filepath.Join(cfg.AccountDir, acme.AccountKeyFile)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("account key after a failed first run: %v %v", st, err)
	}

	bad := cfg
	bad.RootCA = []byte("not a certificate")
	if _, err := acme.Obtain(ctx, bad); err == nil || !strings.Contains(err.Error(), "root_ca") {
		t.Errorf("Obtain with a garbage root_ca: %v", err)
	}
	if _, _, err := acme.Due(ctx, cfg, []byte("no PEM here"), time.Now()); err == nil || !strings.Contains(err.Error(), domain) {
		t.Errorf("Due of garbage: %v", err)
	}
}

// pebbleEnv is a running Pebble validating against nginx, and a Config that uses them.
type pebbleEnv struct {
	cfg       acme.Config
	pebble    *pebbletest.Pebble
	accessLog string
}

func startPebble(t *testing.T) *pebbleEnv {
	t.Helper()
	dir := t.TempDir()
	webroot := filepath.Join(dir, "webroot")
	if err := os.MkdirAll(webroot, 0o755); err != nil {
		t.Fatal(err)
	}
	nginx := pebbletest.ServeWebroot(t, webroot)
	p := pebbletest.Start(t, pebbletest.Options{HTTPPort: nginx.Port})
	return &pebbleEnv{
		cfg: acme.Config{
			Domain:     domain,
			Directory:  p.Directory,
			Email:      "ops@" + domain,
			RootCA:     p.RootCA,
			AccountDir: filepath.Join(dir, "data", "acme"),
			Webroot:    webroot,
		},
		pebble:    p,
		accessLog: nginx.AccessLog,
	}
}

// checkCertificate verifies cert against Pebble's root and returns its leaf.
func (e *pebbleEnv) checkCertificate(t *testing.T, cert *acme.Certificate) *x509.Certificate {
	t.Helper()
	var chain []*x509.Certificate
	for rest := cert.ChainPEM; ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	if len(chain) < 2 {
		t.Fatalf("chain has %d certificates, want leaf and issuer", len(chain))
	}
	leaf := chain[0]
	if !slices.Equal(leaf.DNSNames, []string{domain}) {
		t.Errorf("leaf names %v, want [%s]", leaf.DNSNames, domain)
	}
	if !leaf.NotAfter.Equal(cert.NotAfter) {
		t.Errorf("NotAfter %v, leaf says %v", cert.NotAfter, leaf.NotAfter)
	}
	intermediates := x509.NewCertPool()
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: domain, Roots: e.pebble.Roots(t), Intermediates: intermediates}); err != nil {
		t.Errorf("chain does not verify against Pebble's root: %v", err)
	}
	pair, err := tls.X509KeyPair(cert.ChainPEM, cert.KeyPEM)
	if err != nil {
		t.Fatalf("key does not match the leaf: %v", err)
	}
	if k, ok := pair.PrivateKey.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("certificate key %T, want ECDSA P-256", pair.PrivateKey)
	}
	return leaf
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
