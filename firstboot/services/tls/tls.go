// Package tls provides the server certificate nginx, postfix and stunnel share, in the
// original's priority: the key and certificate of env.yml (appliance.ssl.key/cert),
// else one from an ACME CA (appliance.ssl.letsencrypt, on by default), else a
// self-signed certificate for the domain made here. A failed ACME request keeps a
// still-valid certificate; only when none is valid does it fall back to self-signed,
// and says so on the status page.
package tls

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"time"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
)

// The pair every TLS service uses, as in the original.
const (
	KeyPath  = "/app/etc/server.key.pem"  // 0600
	CertPath = "/app/etc/server.cert.pem" // the full chain
	// Webroot is where ACME http-01 answers are put; nginx serves its
	// .well-known/acme-challenge/ on port 80.
	Webroot    = "/app/etc/acme-webroot"
	accountDir = "/app/etc/acme-account" // 0700: the account key
)

// Sources of the certificate, as the status page names them.
const (
	SourceEnv        = "env"
	SourceACME       = "acme"
	SourceSelfSigned = "self-signed"
)

// renewBefore is when a certificate is replaced: the original's 30 days.
const renewBefore = 30 * 24 * time.Hour

// Service is the server certificate.
type Service struct{}

// Spec implements services.Service.
func (Service) Spec(*env.Env) services.Spec {
	return services.Spec{
		Name:  "tls",
		Reads: []string{"appliance.domain", "appliance.ssl.key", "appliance.ssl.cert", "appliance.ssl.letsencrypt"},
		Dirs: []machine.Dir{
			// The appliance's configuration home, kept on /data as in the original.
			{Path: "/data/etc", Owner: "app"},
			{Path: "/data/etc/acme-account", Mode: 0o700},
			{Path: "/data/etc/acme-webroot"},
		},
		Relocations: []services.Relocation{{Source: "/app/etc", Target: "/data/etc"}},
	}
}

// Files implements services.Service: the pair is not rendered but chosen, in Prepare.
func (Service) Files(*services.Context) ([]machine.File, error) { return nil, nil }

func pair(key, chain []byte) []machine.File {
	return []machine.File{
		{Path: KeyPath, Data: key, Mode: 0o600},
		{Path: CertPath, Data: chain, Mode: 0o644},
	}
}

// Prepare makes sure nginx, postfix and stunnel have a valid pair to start with: the
// env's, the one installed if it is still valid for the domain, else a self-signed one.
// ACME needs nginx to answer its challenge, so it runs in Finish.
func (s Service) Prepare(ctx context.Context, c *services.Context) error {
	ssl := c.Env.Appliance.SSL
	if ssl.Key != "" && ssl.Cert != "" {
		for _, f := range pair([]byte(ssl.Key), []byte(ssl.Cert)) {
			if _, err := c.Write(ctx, f); err != nil {
				return err
			}
		}
		return s.publish(c, SourceEnv, "")
	}
	domain := c.Env.Appliance.Domain
	cur := current(c, domain)
	if cur != nil && cur.forDomain && !cur.selfSigned && *ssl.LetsEncrypt.Enabled && cur.leaf.NotAfter.After(c.Now) {
		return s.publish(c, SourceACME, "")
	}
	if err := selfSigned(ctx, c, domain, cur); err != nil {
		return err
	}
	return s.publish(c, SourceSelfSigned, "")
}

// Finish gets an ACME certificate when one is wanted and the installed one is not an
// ACME certificate that is still good; `appliance-agent renew` runs the same step.
func (s Service) Finish(ctx context.Context, c *services.Context) error {
	ssl := c.Env.Appliance.SSL
	if (ssl.Key != "" && ssl.Cert != "") || !*ssl.LetsEncrypt.Enabled {
		return nil
	}
	if !c.M.Live() {
		// The CA would have to reach this machine's port 80.
		c.M.Out.Detail("would ask %s for a certificate when due (not the running system)", ssl.LetsEncrypt.Directory)
		return nil
	}
	domain := c.Env.Appliance.Domain
	cur := current(c, domain)
	err := renewACME(ctx, c, cur)
	if err == nil {
		return s.publish(c, SourceACME, "")
	}
	if cur != nil && cur.forDomain && cur.leaf.NotAfter.After(c.Now) && !cur.selfSigned {
		c.M.Out.Detail("ACME failed, keeping the certificate valid until %s: %v", cur.leaf.NotAfter.UTC().Format(time.DateOnly), err)
		return s.publish(c, SourceACME, "ACME failed, the current certificate is kept: "+err.Error())
	}
	notice := "ACME failed, serving a self-signed certificate: " + err.Error()
	c.M.Out.Detail("%s", notice)
	if err := selfSigned(ctx, c, domain, cur); err != nil {
		return err
	}
	return s.publish(c, SourceSelfSigned, notice)
}

// publish reads back the certificate in use for the status page.
func (Service) publish(c *services.Context, source, notice string) error {
	cur := current(c, c.Env.Appliance.Domain)
	if cur == nil {
		return fmt.Errorf("%s does not hold a certificate and key that match", CertPath)
	}
	c.Certificate = &services.Certificate{Source: source, NotAfter: cur.leaf.NotAfter, Notice: notice}
	c.Note(fmt.Sprintf("certificate from %s, valid until %s", source, cur.leaf.NotAfter.UTC().Format(time.RFC3339)))
	return nil
}

// installed is the pair on disk.
type installed struct {
	leaf       *x509.Certificate
	selfSigned bool
	forDomain  bool
}

// current returns the installed pair if key and certificate parse and match.
func current(c *services.Context, domain string) *installed {
	chain, err1 := os.ReadFile(c.M.Path(CertPath))
	key, err2 := os.ReadFile(c.M.Path(KeyPath))
	if err1 != nil || err2 != nil {
		return nil
	}
	pairOK, err := tls.X509KeyPair(chain, key)
	if err != nil || len(pairOK.Certificate) == 0 {
		return nil
	}
	leaf, err := x509.ParseCertificate(pairOK.Certificate[0])
	if err != nil {
		return nil
	}
	return &installed{
		leaf:       leaf,
		selfSigned: bytes.Equal(leaf.RawIssuer, leaf.RawSubject) && leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil,
		forDomain:  leaf.VerifyHostname(domain) == nil,
	}
}

// selfSigned keeps a self-signed certificate for the domain that has more than 30
// days left, or makes a new one (ECDSA P-256, a year, the domain as CN and SAN).
func selfSigned(ctx context.Context, c *services.Context, domain string, cur *installed) error {
	if cur != nil && cur.selfSigned && cur.forDomain && cur.leaf.NotAfter.Sub(c.Now) > renewBefore {
		return nil
	}
	key, chain, err := makeSelfSigned(domain, c.Now)
	if err != nil {
		return err
	}
	for _, f := range pair(key, chain) {
		if _, err := c.Write(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

func makeSelfSigned(domain string, now time.Time) (keyPEM, certPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: domain},
		DNSNames:              []string{domain},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
