// Package acme obtains and renews the appliance's TLS certificate over ACME
// (Let's Encrypt or an internal CA named in env.yml), answering http-01 challenges
// through files in the webroot nginx serves. The account key and registration are
// kept on /data so that every renewal uses the same account.
package acme

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/lego"
	"github.com/go-acme/lego/v5/providers/http/webroot"
	"github.com/go-acme/lego/v5/registration"
)

// RenewBefore is how long before expiry a certificate is renewed whatever the
// server's renewal info says: Let's Encrypt's own advice for 90-day certificates.
const RenewBefore = 30 * 24 * time.Hour

// Config is what env.yml says (appliance.ssl.letsencrypt.{directory,email,root_ca})
// plus the machine's paths.
type Config struct {
	Domain    string // the certificate's only name (CN and SAN)
	Directory string // ACME directory URL; "" means Let's Encrypt production
	Email     string // optional contact for the account
	// RootCA, when set, is the only pool trusted for the directory's TLS: an internal CA
	// then cannot be impersonated by any public one. Empty means the system pool.
	RootCA     []byte
	AccountDir string // holds the account key and registration; created 0700
	Webroot    string // lego webroot semantics: tokens go to <Webroot>/.well-known/acme-challenge/
}

// Certificate is an issued certificate with its new private key.
type Certificate struct {
	KeyPEM   []byte    // ECDSA P-256 private key
	ChainPEM []byte    // leaf first, then the issuer(s)
	NotAfter time.Time // the leaf's expiry
}

func (cfg Config) directory() string {
	if cfg.Directory == "" {
		return lego.DirectoryURLLetsEncrypt
	}
	return cfg.Directory
}

// wrap names the directory and the domain, which is what an operator needs to act
// on a failure; nothing here ever carries key material.
func (cfg Config) wrap(what string, err error) error {
	return fmt.Errorf("acme: %s for %s at %s: %w", what, cfg.Domain, cfg.directory(), err)
}

// Obtain registers the account on first use (later calls reuse the stored key and
// registration) and obtains a new certificate for cfg.Domain with a new key.
//
// The key is ECDSA P-256: nginx, postfix and stunnel all serve it, handshakes are
// cheaper than with RSA and Let's Encrypt signs it from its ECDSA hierarchy.
func Obtain(ctx context.Context, cfg Config) (*Certificate, error) {
	if cfg.Domain == "" || cfg.AccountDir == "" || cfg.Webroot == "" {
		return nil, cfg.wrap("obtain", errors.New("domain, account directory and webroot are required"))
	}
	httpClient, err := newHTTPClient(cfg.RootCA)
	if err != nil {
		return nil, cfg.wrap("obtain", err)
	}
	acct, err := loadAccount(cfg.AccountDir, cfg.directory(), cfg.Email)
	if err != nil {
		return nil, cfg.wrap("load account", err)
	}
	client, err := newClient(cfg.directory(), acct, httpClient)
	if err != nil {
		return nil, cfg.wrap("connect", err)
	}
	if acct.reg == nil {
		// Whoever configures letsencrypt in env.yml agrees to the CA's terms.
		reg, err := client.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true})
		if err != nil {
			return nil, cfg.wrap("register account", err)
		}
		acct.reg = reg
		if err := acct.saveRegistration(); err != nil {
			return nil, cfg.wrap("save registration", err)
		}
	}
	provider, err := webroot.NewHTTPProvider(cfg.Webroot)
	if err != nil {
		return nil, cfg.wrap("webroot "+cfg.Webroot, err)
	}
	if err := client.Challenge.SetHTTP01Provider(provider); err != nil {
		return nil, cfg.wrap("obtain", err)
	}
	res, err := client.Certificate.Obtain(ctx, certificate.ObtainRequest{
		Domains:          []string{cfg.Domain},
		KeyType:          certcrypto.EC256,
		Bundle:           true,
		EnableCommonName: true,
	})
	if err != nil {
		return nil, cfg.wrap("obtain certificate", err)
	}
	leaf, err := certcrypto.ParsePEMCertificate(res.Certificate)
	if err != nil {
		return nil, cfg.wrap("parse issued certificate", err)
	}
	return &Certificate{KeyPEM: res.PrivateKey, ChainPEM: res.Certificate, NotAfter: leaf.NotAfter}, nil
}

// Due says whether the certificate in chainPEM (leaf first) should be renewed at now:
// when less than RenewBefore is left, or when the server's renewal window (ARI,
// RFC 9773) has started. The server is asked only when the first rule does not
// already say yes; if it cannot answer, the first rule decides and reason says why
// the server was not heard. err is for an unreadable chain or a cancelled ctx.
func Due(ctx context.Context, cfg Config, chainPEM []byte, now time.Time) (due bool, reason string, err error) {
	certs, err := certcrypto.ParsePEMBundle(chainPEM)
	if err != nil {
		return false, "", cfg.wrap("renewal check", err)
	}
	leaf := certs[0]
	left := leaf.NotAfter.Sub(now)
	if left < RenewBefore {
		return true, fmt.Sprintf("expires %s, in %s: less than %s left", stamp(leaf.NotAfter), days(left), days(RenewBefore)), nil
	}
	start, err := renewalWindowStart(ctx, cfg, leaf)
	if err != nil {
		if ctx.Err() != nil {
			return false, "", cfg.wrap("renewal check", ctx.Err())
		}
		return false, fmt.Sprintf("expires in %s; renewal info unavailable (%v)", days(left), err), nil
	}
	if !now.Before(start) {
		return true, fmt.Sprintf("the server's renewal window started %s (expires in %s)", stamp(start), days(left)), nil
	}
	return false, fmt.Sprintf("expires in %s; the server's renewal window starts %s", days(left), stamp(start)), nil
}

// renewalWindowStart asks the directory's renewalInfo endpoint. That request is an
// unauthenticated GET, so a throwaway key stands in for the account: Due neither
// needs nor touches the account files.
func renewalWindowStart(ctx context.Context, cfg Config, leaf *x509.Certificate) (time.Time, error) {
	httpClient, err := newHTTPClient(cfg.RootCA)
	if err != nil {
		return time.Time{}, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return time.Time{}, err
	}
	client, err := newClient(cfg.directory(), &account{key: key}, httpClient)
	if err != nil {
		return time.Time{}, err
	}
	info, err := client.Certificate.GetRenewalInfo(ctx, leaf)
	if err != nil {
		return time.Time{}, err
	}
	return info.SuggestedWindow.Start, nil
}

func newClient(directory string, acct *account, httpClient *http.Client) (*lego.Client, error) {
	lc := lego.NewConfig(acct)
	lc.CADirURL = directory
	lc.HTTPClient = httpClient
	lc.UserAgent = "ecs-appliance"
	return lego.NewClient(lc)
}

// newHTTPClient trusts only rootCA when it is given (see Config.RootCA) and the
// system pool otherwise. lego's own default reads the pool from environment
// variables, which the agent does not set.
func newHTTPClient(rootCA []byte) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if len(rootCA) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(rootCA) {
			return nil, errors.New("root_ca holds no PEM certificate")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}, nil
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func days(d time.Duration) string {
	return fmt.Sprintf("%.1f days", d.Hours()/24)
}
