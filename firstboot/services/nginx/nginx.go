// Package nginx is the appliance's web front: :80 for ACME challenges, /status.json and
// the redirect to https; :443 with the server certificate, client certificates of the
// ECS CA, the status page while the application is not up, and the proxy to ECS and
// pdf-as.
package nginx

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	_ "embed"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"text/template"
	"time"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/tls"
)

const (
	// SitePath is the server configuration (Debian's nginx.conf includes sites-enabled).
	SitePath = "/etc/nginx/sites-enabled/appliance"
	// The client-certificate CA and its CRL, made by ECS at bootstrap.
	CAPath  = "/data/ecs-ca/ca.cert.pem"
	CRLPath = "/data/ecs-ca/crl.pem"
	// PlaceholderCAPath is what nginx verifies client certificates against until ECS
	// has made its CA: outside ECS's directory, so ECS's bootstrap still makes its own.
	PlaceholderCAPath = "/etc/nginx/appliance-placeholder-ca.pem"
	// Where the application and pdf-as listen on the host.
	AppAddress   = "127.0.0.1:5000"
	PDFASAddress = "127.0.0.1:5095"
	// StubStatusURL is nginx's counters, served when the exporters run.
	StubStatusURL     = "http://" + stubStatusAddress + "/stub_status"
	stubStatusAddress = "127.0.0.1:8081"
	// crlWarning is how long before a CRL's nextUpdate the status page warns.
	crlWarning = 7 * 24 * time.Hour
)

//go:embed appliance.conf.tmpl
var siteText string

var site = template.Must(template.New("appliance.conf").Parse(siteText))

// Service is nginx.
type Service struct{}

// Spec implements services.Service.
func (Service) Spec(*env.Env) services.Spec {
	return services.Spec{
		Name:   "nginx",
		Reads:  []string{"appliance.domain", "appliance.ssl.client_certs_mandatory", "appliance.metric.exporter", "appliance.metric.server"},
		Units:  []string{"nginx.service", "appliance-ecs-ca.path"},
		Reload: services.ReloadOrRestart,
		Watch:  []string{tls.KeyPath, tls.CertPath, CAPath, CRLPath},
		Checks: []services.Check{{Name: "nginx", HTTP: "http://127.0.0.1:80/status.json"}},
		Dirs: []machine.Dir{
			{Path: "/data/ecs-ca", Owner: "1000", Mode: 0o700},
			{Path: "/var/www/html"},
		},
	}
}

type params struct {
	Domain, Cert, Key, CA, CRL, Webroot, App, PDFAS, StubStatus string
	ClientCertsMandatory                                        bool
}

// Files implements services.Service.
func (Service) Files(c *services.Context) ([]machine.File, error) {
	p := params{
		Domain: c.Env.Appliance.Domain, Cert: tls.CertPath, Key: tls.KeyPath, CA: CAPath,
		Webroot: tls.Webroot, App: AppAddress, PDFAS: PDFASAddress,
		ClientCertsMandatory: c.Env.Appliance.SSL.ClientCertsMandatory,
	}
	if c.Env.Appliance.Metric.Exporters() {
		p.StubStatus = stubStatusAddress
	}
	if _, err := os.Stat(c.M.Path(CAPath)); err != nil {
		p.CA = PlaceholderCAPath
	} else if _, err := os.Stat(c.M.Path(CRLPath)); err == nil {
		// A CA without its CRL would make nginx refuse every client certificate.
		p.CRL = CRLPath
	}
	var b bytes.Buffer
	if err := site.Execute(&b, p); err != nil {
		return nil, err
	}
	return []machine.File{{Path: SitePath, Data: b.Bytes(), Check: check(p)}}, nil
}

// check runs nginx -t on the candidate inside a minimal main configuration: the
// site is checked on its own (the certificate and CA it names must load), without
// touching the configuration nginx runs with.
func check(p params) func(context.Context, *machine.Machine, string) error {
	return func(ctx context.Context, m *machine.Machine, candidate string) error {
		text, err := os.ReadFile(candidate)
		if err != nil {
			return err
		}
		// Relative paths are the scratch directory's (nginx -p).
		const main = "pid nginx.pid;\nerror_log stderr;\nevents {}\nhttp {\n    include /etc/nginx/mime.types;\n    access_log off;\n    include site.conf;\n}\n"
		dir, remove, err := machine.Scratch(map[string][]byte{
			"site.conf":  m.Localize(text, p.Cert, p.Key, p.CA, p.CRL, p.Webroot),
			"nginx.conf": []byte(main),
		})
		if err != nil {
			return err
		}
		defer remove()
		_, err = m.Run(ctx, machine.Command{Name: "nginx", Args: []string{"-t", "-q", "-p", dir, "-c", filepath.Join(dir, "nginx.conf")}})
		return err
	}
}

// CheckLive has nginx test the configuration it would load on a reload: the CA or
// CRL ECS writes may be broken, and nginx would then refuse to reload, or, restarted,
// not start.
func (Service) CheckLive(ctx context.Context, c *services.Context) error {
	if !c.M.Live() {
		return nil
	}
	_, err := c.M.Run(ctx, machine.Command{Name: "nginx", Args: []string{"-t", "-q"}})
	return err
}

// Prepare makes the placeholder client-certificate CA nginx uses until ECS has made
// its own (made once; nginx can then start), and warns before the CRL expires.
func (Service) Prepare(ctx context.Context, c *services.Context) error {
	if _, err := os.Stat(c.M.Path(PlaceholderCAPath)); errors.Is(err, fs.ErrNotExist) {
		ca, err := placeholderCA(c.Env.Appliance.Domain, c.Now)
		if err != nil {
			return err
		}
		if _, err := c.Write(ctx, machine.File{Path: PlaceholderCAPath, Data: ca}); err != nil {
			return err
		}
	}
	return crlNotice(c)
}

// crlNotice puts the CRL's expiry on the status page: past its nextUpdate nginx
// rejects every client certificate.
func crlNotice(c *services.Context) error {
	data, err := os.ReadFile(c.M.Path(CRLPath))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return fmt.Errorf("%s is not a PEM CRL", CRLPath)
	}
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		return fmt.Errorf("%s: %w", CRLPath, err)
	}
	switch next := crl.NextUpdate; {
	case next.IsZero():
	case !next.After(c.Now):
		c.Note(fmt.Sprintf("the client-certificate CRL expired at %s: nginx rejects every client certificate until ECS renews it", next.UTC().Format(time.RFC3339)))
	case next.Sub(c.Now) < crlWarning:
		c.Note(fmt.Sprintf("the client-certificate CRL expires at %s: then nginx rejects every client certificate", next.UTC().Format(time.RFC3339)))
	}
	return nil
}

// placeholderCA is a CA certificate whose key is thrown away: it signs nothing, so
// no client certificate passes until ECS puts its own CA in place.
func placeholderCA(domain string, now time.Time) ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "placeholder CA of " + domain + " (until ECS makes its own)"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
