// Package pebbletest runs a real Pebble ACME server (with pebble-challtestsrv as its
// DNS) for tests, built once from the Go module proxy and cached.
package pebbletest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

const (
	pebbleModule  = "github.com/letsencrypt/pebble/v2"
	pebbleVersion = "v2.10.3"
)

// Options says where Pebble listens and where it validates.
type Options struct {
	Listen string // ACME API address; "" = a free loopback port
	// TLSHosts are the names/IPs of a generated listener certificate, which also
	// covers 127.0.0.1 for the management API; empty = Pebble's own localhost
	// certificate with pebble.minica.pem as root.
	TLSHosts []string
	HTTPPort int // the port on 127.0.0.1 Pebble's VA connects to for http-01; required
}

// Pebble is a running Pebble.
type Pebble struct {
	Directory string // https://<TLSHosts[0] or the listen host>:<port>/dir
	RootCA    []byte // PEM to trust for Directory's TLS
	// Client trusts RootCA and dials Directory's host:port at the listen address,
	// so it reaches Directory from the host even when that names 10.0.2.2.
	Client *http.Client
	Mgmt   string // management API base URL, on 127.0.0.1
}

// Start runs Pebble and its DNS server, which answers every name with 127.0.0.1,
// killed at cleanup, their logs shown when the test failed.
func Start(t testing.TB, opt Options) *Pebble {
	t.Helper()
	if opt.HTTPPort == 0 {
		t.Fatal("pebbletest: Options.HTTPPort is required")
	}
	bins := binaries(t)
	dir := t.TempDir()

	listen := opt.Listen
	if listen == "" {
		listen = testtool.FreeAddress(t)
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		t.Fatalf("pebbletest: Listen %q: %v", listen, err)
	}
	dialHost := host
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		dialHost = "127.0.0.1"
	}
	dirHost := dialHost
	certFile, keyFile := filepath.Join(bins, "cert.pem"), filepath.Join(bins, "key.pem")
	var rootCA []byte
	if len(opt.TLSHosts) == 0 {
		rootCA = readFile(t, filepath.Join(bins, "pebble.minica.pem"))
	} else {
		dirHost = opt.TLSHosts[0]
		hosts := opt.TLSHosts
		if !slices.Contains(hosts, "127.0.0.1") {
			hosts = append(slices.Clone(hosts), "127.0.0.1")
		}
		var certPEM, keyPEM []byte
		rootCA, certPEM, keyPEM = listenerCertificate(t, hosts)
		certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		writeFile(t, certFile, certPEM)
		writeFile(t, keyFile, keyPEM)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(rootCA) {
		t.Fatal("pebbletest: root CA holds no certificate")
	}
	dirAddr, listenAddr := net.JoinHostPort(dirHost, port), net.JoinHostPort(dialHost, port)
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	client := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool},
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if addr == dirAddr {
					addr = listenAddr
				}
				return dialer.DialContext(ctx, network, addr)
			},
		},
	}

	dnsAddr := startDNS(t, dir, bins)

	mgmt := testtool.FreeAddress(t)
	config := fmt.Sprintf(`{"pebble": {
		"listenAddress": %q, "managementListenAddress": %q,
		"certificate": %q, "privateKey": %q,
		"httpPort": %d, "tlsPort": %s,
		"ocspResponderURL": "", "externalAccountBindingRequired": false,
		"retryAfter": {"authz": 1, "order": 1},
		"keyAlgorithm": "ecdsa",
		"profiles": {"default": {"description": "90 days", "validityPeriod": 7776000}}
	}}`, listen, mgmt, certFile, keyFile, opt.HTTPPort, portOf(testtool.FreeAddress(t)))
	configFile := filepath.Join(dir, "pebble.json")
	writeFile(t, configFile, []byte(config))
	cmd := exec.Command(filepath.Join(bins, "pebble"), "-config", configFile, "-dnsserver", dnsAddr)
	// Deterministic: no random validation delays, bad nonces or reused authorizations,
	// so each order really has the http-01 token fetched.
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_VA_ALWAYS_VALID=0",
		"PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	p := &Pebble{
		Directory: "https://" + dirAddr + "/dir",
		RootCA:    rootCA,
		Client:    client,
		Mgmt:      "https://" + mgmt,
	}
	proc := start(t, dir, "pebble", cmd)
	waitFor(t, proc, "pebble directory", func() error { _, err := get(client, p.Directory); return err })
	waitFor(t, proc, "pebble management", func() error { _, err := get(client, p.Mgmt+"/roots/0"); return err })
	return p
}

// startDNS runs pebble-challtestsrv as a DNS server only and returns its address.
func startDNS(t testing.TB, dir, bins string) string {
	t.Helper()
	dnsAddr, challMgmt := testtool.FreeAddress(t), testtool.FreeAddress(t)
	p := start(t, dir, "challtestsrv", exec.Command(filepath.Join(bins, "pebble-challtestsrv"),
		"-dnsserver", dnsAddr, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "", "-management", challMgmt))
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", dnsAddr)
	}}
	const probe = "probe.example.org"
	waitFor(t, p, "challtestsrv DNS", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		addrs, err := resolver.LookupHost(ctx, probe)
		if err == nil && !slices.Equal(addrs, []string{"127.0.0.1"}) {
			return fmt.Errorf("%s resolves to %v", probe, addrs)
		}
		return err
	})
	return dnsAddr
}

// Roots returns Pebble's issuing root, generated at its start. Issued chains carry
// their intermediates, so the root alone verifies them.
func (p *Pebble) Roots(t testing.TB) *x509.CertPool {
	t.Helper()
	rootPEM, err := get(p.Client, p.Mgmt+"/roots/0")
	if err != nil {
		t.Fatalf("pebble root: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("Pebble's root is no PEM: %q", rootPEM)
	}
	return roots
}

// SetRenewalWindow overrides the renewal info (ARI) Pebble serves for leaf.
func (p *Pebble) SetRenewalWindow(t testing.TB, leaf *x509.Certificate, start, end time.Time) {
	t.Helper()
	ari, _ := json.Marshal(map[string]any{"suggestedWindow": map[string]time.Time{"start": start, "end": end}})
	body, _ := json.Marshal(map[string]string{
		"Certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Raw})),
		"ARIResponse": string(ari),
	})
	resp, err := p.Client.Post(p.Mgmt+"/set-renewal-info/", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("set-renewal-info: %s: %s", resp.Status, msg)
	}
}

// listenerCertificate makes a throwaway CA and a leaf for hosts signed by it.
func listenerCertificate(t testing.TB, hosts []string) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pebbletest listener CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    ca.NotBefore,
		NotAfter:     ca.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			leaf.IPAddresses = append(leaf.IPAddresses, ip)
		} else {
			leaf.DNSNames = append(leaf.DNSNames, h)
		}
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// binaries builds pebble and pebble-challtestsrv from the module proxy once and
// keeps them, with the certificates needed from Pebble's source, in the user's
// cache directory.
func binaries(t testing.TB) string {
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
		writeFile(t, filepath.Join(tmp, dst), readFile(t, filepath.Join(mod.Dir, src)))
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
