package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/env-tools/generate"
	"github.com/ethikkom/ecs-appliance/internal/atomicfile"
)

const newHelp = `Usage: ecs-env new DOMAIN [-o DIR] [--extra extra.yml] [--key-type rsa3072|ed25519]

Writes DIR/env.yml for an appliance serving DOMAIN, with fresh secrets: three OpenPGP
keys (ecs_backup for backups, ecs_mediaserver and ecs_authority for the document
vault), the DKIM key for mail, and the Django secrets. The file is created with mode
0600 and is never overwritten. Its comments list what to edit next and the DNS records
to publish (A, MX, SPF, DMARC, DKIM, PTR).

Options:
  -o DIR          where to write env.yml (default: the current directory)
  --extra FILE    merge settings from FILE: ssh_authorized_keys, appliance.sentry,
                  appliance.metric, appliance.git, appliance.extra.files,
                  appliance.update, ecs.git (as the original env-create --extra)
  --key-type T    rsa3072 (default; any GnuPG) or ed25519 (ed25519/cv25519, smaller)
`

func runNew(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("new", flag.ContinueOnError)
	dir := fs.String("o", ".", "")
	extraPath := fs.String("extra", "", "")
	keyType := fs.String("key-type", "rsa3072", "")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	kt, err := generate.ParseKeyType(*keyType)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	opts := generate.Options{Domain: pos[0], KeyType: kt, ExtraName: *extraPath}
	if *extraPath != "" {
		if opts.Extra, err = os.ReadFile(*extraPath); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	target := filepath.Join(*dir, "env.yml")
	// Fail before the slow key generation if the file is already there.
	if _, err := os.Lstat(target); err == nil {
		return fmt.Errorf("%s already exists; not overwriting it (choose another -o DIR)", target)
	}
	data, err := generate.New(opts)
	if err != nil {
		var list env.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				fmt.Fprintln(stderr, e)
			}
			return errReported
		}
		return err
	}
	// The generator and the loader must agree; a mismatch is a bug, caught here
	// rather than at the appliance's first boot.
	if _, _, err := env.Parse(target, data); err != nil {
		return fmt.Errorf("internal error: the new env does not pass its own check:\n%v", err)
	}
	// Key generation takes a while; a signal during it must not yield a file.
	if err := interrupted(ctx); err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(target, data, atomicfile.Options{Perm: 0o600, NoOverwrite: true}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (mode 0600, it holds secrets)\nnext: edit the TODOs in it, then: ecs-env check %s && ecs-env build %s\n", target, target, target)
	return nil
}
