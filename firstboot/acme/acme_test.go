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
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ethikkom/ecs-appliance/firstboot/acme"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

const (
	pebbleModule  = "github.com/letsencrypt/pebble/v2"
	pebbleVersion = "v2.10.3"
	domain        = "e2e.example.org" // challtestsrv answers every name with 127.0.0.1
)

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
	env.setRenewalWindow(t, leaf1, windowStart, windowStart.Add(24*time.Hour))
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

// pebbleEnv is a running Pebble, its DNS server and nginx, and a Config that uses them.
type pebbleEnv struct {
	cfg       acme.Config
	mgmt      string // Pebble's management https base URL
	tlsClient *http.Client
	accessLog string
}

func startPebble(t *testing.T) *pebbleEnv {
	t.Helper()
	nginx := testtool.Require(t, "/usr/sbin/nginx")[0] // Debian's, as on the appliance
	bins := pebbleBinaries(t)
	minica := readFile(t, filepath.Join(bins, "pebble.minica.pem"))
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(minica) {
		t.Fatal("pebble.minica.pem holds no certificate")
	}
	tlsClient := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	dir := t.TempDir()
	webroot := filepath.Join(dir, "webroot")
	if err := os.MkdirAll(webroot, 0o755); err != nil {
		t.Fatal(err)
	}

	nginxAddr := testtool.FreeAddress(t)
	accessLog := startNginx(t, nginx, filepath.Join(dir, "nginx"), nginxAddr, webroot)

	dnsAddr, challMgmt := testtool.FreeAddress(t), testtool.FreeAddress(t)
	challtest := start(t, dir, "challtestsrv", exec.Command(filepath.Join(bins, "pebble-challtestsrv"),
		"-dnsserver", dnsAddr, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "", "-management", challMgmt))
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", dnsAddr)
	}}
	waitFor(t, challtest, "challtestsrv DNS", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		addrs, err := resolver.LookupHost(ctx, domain)
		if err == nil && !slices.Equal(addrs, []string{"127.0.0.1"}) {
			return fmt.Errorf("%s resolves to %v", domain, addrs)
		}
		return err
	})

	listen, mgmt := testtool.FreeAddress(t), testtool.FreeAddress(t)
	config := fmt.Sprintf(`{"pebble": {
		"listenAddress": %q, "managementListenAddress": %q,
		"certificate": %q, "privateKey": %q,
		"httpPort": %s, "tlsPort": %s,
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
		"retryAfter": {"authz": 1, "order": 1},
		"keyAlgorithm": "ecdsa",
		"profiles": {"default": {"description": "90 days", "validityPeriod": 7776000}}
	}}`, listen, mgmt, filepath.Join(bins, "cert.pem"), filepath.Join(bins, "key.pem"),
		portOf(nginxAddr), portOf(testtool.FreeAddress(t)))
	configFile := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(configFile, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bins, "pebble"), "-config", configFile, "-dnsserver", dnsAddr)
	// Deterministic: no random validation delays, bad nonces or reused authorizations,
	// so each Obtain really has nginx serve a token.
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_VA_ALWAYS_VALID=0",
		"PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	pebble := start(t, dir, "pebble", cmd)
	directory := "https://" + listen + "/dir"
	waitFor(t, pebble, "pebble directory", func() error { _, err := get(tlsClient, directory); return err })

	return &pebbleEnv{
		cfg: acme.Config{
			Domain:     domain,
			Directory:  directory,
			Email:      "ops@" + domain,
			RootCA:     minica,
			AccountDir: filepath.Join(dir, "data", "acme"),
			Webroot:    webroot,
		},
		mgmt:      "https://" + mgmt,
		tlsClient: tlsClient,
		accessLog: accessLog,
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
	rootPEM, err := get(e.tlsClient, e.mgmt+"/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	roots, intermediates := x509.NewCertPool(), x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("Pebble's root is no PEM: %q", rootPEM)
	}
	for _, c := range chain[1:] {
		intermediates.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: domain, Roots: roots, Intermediates: intermediates}); err != nil {
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

// setRenewalWindow overrides the renewal info Pebble serves for leaf.
func (e *pebbleEnv) setRenewalWindow(t *testing.T, leaf *x509.Certificate, start, end time.Time) {
	t.Helper()
	ari, _ := json.Marshal(map[string]any{"suggestedWindow": map[string]time.Time{"start": start, "end": end}})
	body, _ := json.Marshal(map[string]string{
		"Certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})),
		"ARIResponse": string(ari),
	})
	resp, err := e.tlsClient.Post(e.mgmt+"/set-renewal-info/", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("set-renewal-info: %s: %s", resp.Status, msg)
	}
}

// startNginx runs Debian's nginx in the foreground under prefix, serving the
// challenge directory of webroot as the appliance's nginx does; it returns the
// access log's path.
func startNginx(t *testing.T, nginx, prefix, addr, webroot string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	accessLog := filepath.Join(prefix, "access.log")
	conf := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
	access_log %[2]s;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
	default_type text/plain;
	server {
		listen %[3]s;
		location /.well-known/acme-challenge/ { root %[4]s; }
	}
}
`, prefix, accessLog, addr, webroot)
	confFile := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// -e: the early error log, else nginx opens /var/log/nginx/error.log first.
	p := start(t, prefix, "nginx", exec.Command(nginx, "-p", prefix, "-c", confFile, "-e", filepath.Join(prefix, "error.log")))
	probeDir := filepath.Join(webroot, ".well-known", "acme-challenge")
	if err := os.MkdirAll(probeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(probeDir, "probe")
	if err := os.WriteFile(probe, []byte("ready"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, p, "nginx", func() error {
		body, err := get(http.DefaultClient, "http://"+addr+"/.well-known/acme-challenge/probe")
		if err == nil && string(body) != "ready" {
			err = fmt.Errorf("probe answered %q", body)
		}
		return err
	})
	if err := os.Remove(probe); err != nil {
		t.Fatal(err)
	}
	return accessLog
}

// proc is a started server; exited is closed when it ends.
type proc struct {
	name   string
	log    string
	exited chan struct{}
	err    error
}

// start runs cmd with its output in dir/name.log, killed at cleanup; the log is
// shown when the test failed.
func start(t *testing.T, dir, name string, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{name: name, log: filepath.Join(dir, name+".log"), exited: make(chan struct{})}
	out, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		out.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			log, _ := os.ReadFile(p.log)
			t.Logf("%s output:\n%s", name, tail(log, 4000))
		}
	})
	return p
}

// waitFor polls ready until it succeeds, failing when p exits or 30 s pass.
func waitFor(t *testing.T, p *proc, what string, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := ready()
		if err == nil {
			return
		}
		select {
		case <-p.exited:
			log, _ := os.ReadFile(p.log)
			t.Fatalf("%s exited (%v) before %s was ready:\n%s", p.name, p.err, what, tail(log, 4000))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 30s: %v", what, err)
		}
	}
}

// pebbleBinaries builds pebble and pebble-challtestsrv from the module proxy once
// and keeps them, with the certificates the test needs from Pebble's source, in the
// user's cache directory.
func pebbleBinaries(t *testing.T) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		testtool.Missing(t, "no cache directory: "+err.Error())
	}
	dir := filepath.Join(cache, "ecs-appliance-test", "pebble-"+pebbleVersion)
	files := []string{"pebble", "pebble-challtestsrv", "cert.pem", "key.pem", "pebble.minica.pem"}
	if allExist(dir, files) {
		return dir
	}
	// go test puts its own GOROOT/bin first on the test's PATH.
	goCmd, err := exec.LookPath("go")
	if err != nil {
		testtool.Missing(t, "the go command is needed to build Pebble")
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".pebble-*")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	goRun := func(env []string, args ...string) []byte {
		cmd := exec.Command(goCmd, args...)
		cmd.Dir = tmp // outside this module: its go.mod must not change or matter
		cmd.Env = append(os.Environ(), append([]string{"GOFLAGS=", "GOWORK=off", "CGO_ENABLED=0"}, env...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
		}
		return out
	}
	goRun([]string{"GOBIN=" + tmp}, "install",
		pebbleModule+"/cmd/pebble@"+pebbleVersion, pebbleModule+"/cmd/pebble-challtestsrv@"+pebbleVersion)
	var mod struct{ Dir string }
	if err := json.Unmarshal(goRun(nil, "mod", "download", "-json", pebbleModule+"@"+pebbleVersion), &mod); err != nil {
		t.Fatal(err)
	}
	for dst, src := range map[string]string{
		"cert.pem":          "test/certs/localhost/cert.pem",
		"key.pem":           "test/certs/localhost/key.pem",
		"pebble.minica.pem": "test/certs/pebble.minica.pem",
	} {
		if err := os.WriteFile(filepath.Join(tmp, dst), readFile(t, filepath.Join(mod.Dir, src)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Rename publishes all files at once; a concurrent run that won is as good.
	if err := os.Rename(tmp, dir); err != nil && !allExist(dir, files) {
		t.Fatal(err)
	}
	return dir
}

func allExist(dir string, names []string) bool {
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			return false
		}
	}
	return true
}

func get(c *http.Client, url string) ([]byte, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = errors.New(resp.Status)
	}
	return body, err
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
