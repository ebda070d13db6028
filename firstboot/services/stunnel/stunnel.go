// Package stunnel terminates TLS for the mail ECS receives: SMTP (STARTTLS) on port 25
// and SMTPS on 465 of every address, forwarded to the application's smtpd on
// 127.0.0.1:5025, with the server certificate; a new certificate restarts it.
package stunnel

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/tls"
)

const (
	ConfPath = "/etc/stunnel/appliance.conf"
	// Unit is Debian's per-file template instance for ConfPath.
	Unit = "stunnel@appliance.service"
	// SMTPDAddress is where the application's smtpd listens on the host.
	SMTPDAddress = "127.0.0.1:5025"
)

//go:embed appliance.conf.tmpl
var confText string

var conf = template.Must(template.New("appliance.conf").Parse(confText))

// Service is stunnel.
type Service struct{}

// Spec implements services.Service.
func (Service) Spec(*env.Env) services.Spec {
	return services.Spec{
		Name:   "stunnel",
		Units:  []string{Unit},
		Reload: services.Restart,
		Watch:  []string{tls.KeyPath, tls.CertPath},
		Checks: []services.Check{{Name: "stunnel", TCP: "127.0.0.1:465"}},
	}
}

type params struct{ SMTP, SMTPS, Target, Cert, Key string }

func render(p params) ([]byte, error) {
	var b bytes.Buffer
	err := conf.Execute(&b, p)
	return b.Bytes(), err
}

// Files implements services.Service.
func (Service) Files(*services.Context) ([]machine.File, error) {
	p := params{SMTP: "0.0.0.0:25", SMTPS: "0.0.0.0:465", Target: SMTPDAddress, Cert: tls.CertPath, Key: tls.KeyPath}
	data, err := render(p)
	if err != nil {
		return nil, err
	}
	return []machine.File{{Path: ConfPath, Data: data, Check: check(data)}}, nil
}

// check has stunnel load the configuration: the same text with its listeners moved
// to free loopback ports, run until it says it is configured (certificate and key
// loaded) or exits with the reason. stunnel has no check-only mode.
func check(data []byte) func(context.Context, *machine.Machine, string) error {
	return func(ctx context.Context, m *machine.Machine, _ string) error {
		text := string(data)
		text = strings.ReplaceAll(text, "0.0.0.0:25\n", "127.0.0.1:0\n")
		text = strings.ReplaceAll(text, "0.0.0.0:465\n", "127.0.0.1:0\n")
		text = strings.ReplaceAll(text, "setuid = stunnel4\nsetgid = stunnel4\n", "")
		text = strings.Replace(text, "syslog = no\n", "syslog = no\ndebug = notice\n", 1)
		dir, remove, err := machine.Scratch(map[string][]byte{"check.conf": m.Localize([]byte(text), tls.CertPath, tls.KeyPath)})
		if err != nil {
			return err
		}
		defer remove()
		return loads(ctx, filepath.Join(dir, "check.conf"))
	}
}

// loads runs stunnel on a configuration until it reports "Configuration successful".
func loads(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "stunnel4", path)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var log []string
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "Configuration successful") {
			return nil
		}
		log = append(log, line)
	}
	return fmt.Errorf("stunnel4 did not load it: %s", strings.Join(tail(log, 5), "; "))
}

func tail(lines []string, n int) []string {
	if len(lines) > n {
		return lines[len(lines)-n:]
	}
	return lines
}
