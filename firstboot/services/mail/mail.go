// Package mail is the appliance's outbound mail: postfix on loopback and the container
// bridge (never an open relay), opportunistic TLS with the server certificate, and
// opendkim signing everything with appliance.dkim.key (selector "default", the domain
// of appliance.domain), the key whose DNS record `ecs-env new` printed.
package mail

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/docker"
	"github.com/ethikkom/ecs-appliance/firstboot/services/tls"
)

const (
	MainCFPath   = "/etc/postfix/main.cf"
	MasterCFPath = "/etc/postfix/master.cf"
	OpenDKIMPath = "/etc/opendkim.conf"
	DKIMKeyPath  = "/etc/dkimkeys/dkim.key"
	// SubmissionPort is where postfix takes mail from this machine and the containers
	// (SMTP_URL of the application).
	SubmissionPort = 587
	// milterPort is opendkim's, on loopback (the original's 12345).
	milterPort = 12345
	// Selector is the DKIM selector of the DNS record default._domainkey.<domain>.
	Selector = "default"
)

var (
	//go:embed main.cf.tmpl
	mainText string
	//go:embed master.cf.tmpl
	masterText string
	//go:embed opendkim.conf.tmpl
	dkimText string

	tmpl = template.Must(template.Must(template.Must(template.New("main.cf").Parse(mainText)).
		New("master.cf").Parse(masterText)).New("opendkim.conf").Parse(dkimText))
)

// Service is postfix and opendkim.
type Service struct{}

// Spec implements services.Service.
// Without a DKIM key mail goes out unsigned (env validation warns), and opendkim is
// neither configured nor started.
func (Service) Spec(e *env.Env) services.Spec {
	s := services.Spec{
		Name:   "mail",
		Reads:  []string{"appliance.domain", "appliance.dkim.key"},
		Units:  []string{"postfix.service"},
		Reload: services.Restart,
		Watch:  []string{tls.KeyPath, tls.CertPath},
		Checks: []services.Check{{Name: "postfix", TCP: fmt.Sprintf("127.0.0.1:%d", SubmissionPort)}},
	}
	if e.Appliance.DKIM.Key != "" {
		s.Units = append([]string{"opendkim.service"}, s.Units...)
		s.Checks = append(s.Checks, services.Check{Name: "opendkim", TCP: fmt.Sprintf("127.0.0.1:%d", milterPort)})
	}
	return s
}

type params struct {
	Domain, Bridge, BridgeNet, Cert, Key, Milter, KeyFile string
	Submission, Port                                      int
}

// Files implements services.Service.
func (Service) Files(c *services.Context) ([]machine.File, error) {
	p := params{
		Domain: c.Env.Appliance.Domain, Bridge: docker.BridgeIP, BridgeNet: docker.BridgeNet,
		Cert: tls.CertPath, Key: tls.KeyPath, KeyFile: DKIMKeyPath,
		Submission: SubmissionPort, Port: milterPort,
	}
	signing := c.Env.Appliance.DKIM.Key != ""
	if signing {
		p.Milter = fmt.Sprintf("127.0.0.1:%d", milterPort)
	}
	render := func(name string) ([]byte, error) {
		var b bytes.Buffer
		err := tmpl.ExecuteTemplate(&b, name, p)
		return b.Bytes(), err
	}
	mainCF, err := render("main.cf")
	if err != nil {
		return nil, err
	}
	masterCF, err := render("master.cf")
	if err != nil {
		return nil, err
	}
	files := []machine.File{
		{Path: MasterCFPath, Data: masterCF, Check: checkPostfix("master.cf", "main.cf", mainCF)},
		{Path: MainCFPath, Data: mainCF, Check: checkPostfix("main.cf", "master.cf", masterCF)},
	}
	if !signing {
		c.Note("appliance.dkim.key is not set: outgoing mail is not DKIM-signed")
		return files, nil
	}
	dkimConf, err := render("opendkim.conf")
	if err != nil {
		return nil, err
	}
	key := c.Env.Appliance.DKIM.Key
	if !strings.HasSuffix(key, "\n") {
		key += "\n"
	}
	return append(files,
		machine.File{Path: DKIMKeyPath, Data: []byte(key), Mode: 0o600, Owner: "opendkim:opendkim"},
		machine.File{Path: OpenDKIMPath, Data: dkimConf, Check: checkOpenDKIM},
	), nil
}

// checkPostfix has postconf read the candidate (as name) next to the other file of
// this render in a scratch configuration directory; any warning (an unknown
// parameter, a bad master.cf line) rejects it.
func checkPostfix(as, other string, otherData []byte) func(context.Context, *machine.Machine, string) error {
	return func(ctx context.Context, m *machine.Machine, candidate string) error {
		text, err := os.ReadFile(candidate)
		if err != nil {
			return err
		}
		dir, remove, err := machine.Scratch(map[string][]byte{as: text, other: otherData})
		if err != nil {
			return err
		}
		defer remove()
		// postconf exits 0 on unknown parameters and bad lines, but warns.
		for _, args := range [][]string{{"-c", dir, "-n"}, {"-c", dir, "-M"}} {
			var warnings bytes.Buffer
			if _, err := m.Run(ctx, machine.Command{Name: "postconf", Args: args, Stderr: &warnings}); err != nil {
				return err
			}
			if w := strings.TrimSpace(warnings.String()); w != "" {
				return fmt.Errorf("postconf: %s", w)
			}
		}
		return nil
	}
}

// checkOpenDKIM has opendkim check the candidate, key file included.
func checkOpenDKIM(ctx context.Context, m *machine.Machine, candidate string) error {
	text, err := os.ReadFile(candidate)
	if err != nil {
		return err
	}
	if !m.Live() {
		// A tree under /tmp is writable by others, which opendkim rightly refuses for keys.
		text = append(m.Localize(text, DKIMKeyPath), "RequireSafeKeys no\n"...)
	}
	dir, remove, err := machine.Scratch(map[string][]byte{"opendkim.conf": text})
	if err != nil {
		return err
	}
	defer remove()
	_, err = m.Run(ctx, machine.Command{Name: "opendkim", Args: []string{"-n", "-x", filepath.Join(dir, "opendkim.conf")}})
	return err
}
