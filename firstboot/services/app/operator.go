package app

import (
	"context"
	"fmt"
	"io"
	"net/mail"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/ethikkom/ecs-appliance/firstboot/machine"
)

// ClientCertDir is where client certificates made for users land on the host
// (/app/ecs-cache/client-certs in the containers).
const ClientCertDir = "/volatile/ecs-cache/client-certs"

// CreateUser makes (or updates) an internal user of ECS in the group EC-Office and
// prints the passphrase it got, once, on out: the original's create-internal-user.sh,
// with the values passed as a management command's arguments, never as Python source.
func (l *Lifecycle) CreateUser(ctx context.Context, out io.Writer, email, first, last, gender string) error {
	if err := checkEmail(email); err != nil {
		return err
	}
	for _, v := range []string{first, last} {
		if err := checkName(v); err != nil {
			return err
		}
	}
	if gender != "f" && gender != "m" {
		return fmt.Errorf("gender %q: f or m", gender)
	}
	return l.manage(ctx, out, "create_internal_user", email, first, last, gender)
}

// ClientCert issues a client certificate (PKCS#12) for the user with email and prints
// its passphrase once; the file is put in ClientCertDir for the admin to hand over.
func (l *Lifecycle) ClientCert(ctx context.Context, out io.Writer, email, name string) (string, error) {
	if err := checkEmail(email); err != nil {
		return "", err
	}
	if err := checkName(name); err != nil {
		return "", err
	}
	file := strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, name) + ".p12"
	if _, err := l.M.EnsureDir(machine.Dir{Path: ClientCertDir, Owner: appUID + ":" + appUID, Mode: 0o700}); err != nil {
		return "", err
	}
	inContainer := "/app/ecs-cache/client-certs/" + file
	if err := l.manage(ctx, out, "create_client_certificate", email, name, "--out", inContainer); err != nil {
		return "", err
	}
	return filepath.Join(ClientCertDir, file), nil
}

// manage runs a management command of ECS in the running web container; its output
// (a passphrase) goes to out only, never to the agent's log.
func (l *Lifecycle) manage(ctx context.Context, out io.Writer, args ...string) error {
	cmd := append([]string{"compose", "--project-directory", l.M.Path(ProjectDir), "-f", l.M.Path(ComposeFile),
		"exec", "-T", "ecs.web", "/start", "run", "./manage.py"}, args...)
	_, err := l.M.Run(ctx, machine.Command{Name: "docker", Args: cmd, Output: out})
	if err != nil {
		return fmt.Errorf("%s (is the appliance running? systemctl status appliance): %w", args[0], err)
	}
	return nil
}

func checkEmail(email string) error {
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email {
		return fmt.Errorf("%q is not an email address", email)
	}
	return nil
}

func checkName(v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("an empty name")
	}
	if strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return fmt.Errorf("%q has control characters", v)
	}
	return nil
}
