package tls

import (
	"context"
	"os"

	"github.com/ethikkom/ecs-appliance/firstboot/acme"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
)

// renewACME gets a new certificate from the env's ACME directory unless the installed
// one is an ACME certificate for the domain that is not due (30 days, or the CA's
// renewal window).
func renewACME(ctx context.Context, c *services.Context, cur *installed) error {
	le := c.Env.Appliance.SSL.LetsEncrypt
	cfg := acme.Config{
		Domain:     c.Env.Appliance.Domain,
		Directory:  le.Directory,
		Email:      le.Email,
		RootCA:     []byte(le.RootCA),
		AccountDir: c.M.Path(accountDir),
		Webroot:    c.M.Path(Webroot),
	}
	if cur != nil && cur.forDomain && !cur.selfSigned {
		chain, err := os.ReadFile(c.M.Path(CertPath))
		if err != nil {
			return err
		}
		due, reason, err := acme.Due(ctx, cfg, chain, c.Now)
		if err != nil {
			return err
		}
		if !due {
			return nil
		}
		c.M.Out.Detail("renewing the certificate: %s", reason)
	}
	cert, err := acme.Obtain(ctx, cfg)
	if err != nil {
		return err
	}
	for _, f := range pair(cert.KeyPEM, cert.ChainPEM) {
		if _, err := c.Write(ctx, f); err != nil {
			return err
		}
	}
	return nil
}
