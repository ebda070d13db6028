package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ethikkom/ecs-appliance/env-tools/bundle"
	"github.com/ethikkom/ecs-appliance/env-tools/cidata"
	"github.com/ethikkom/ecs-appliance/env-tools/qrpaper"
	"github.com/ethikkom/ecs-appliance/internal/atomicfile"
)

const buildHelp = `Usage: ecs-env build ENV [-o DIR] [--recipients FILE] [--meta-data FILE]

Checks ENV (as "ecs-env check" does; an invalid env builds nothing) and writes to DIR
(default: the directory of ENV), each file mode 0600. The files are replaced together
once all are complete; a build that fails or is interrupted changes none of them:

  env.yml.pdf      the paper backup: the env as text, then QR codes of it, then how to
                   restore it (with "ecs-env restore" or pdftoppm, zbarimg, base64, gunzip)
  env-cidata.iso   the cloud-init NoCloud seed to attach to the VM as a CD-ROM: user-data
                   (the env), meta-data, env.yml.pdf
  DOMAIN.env.YYYY-MM-DD_HH.MM.tar.gz.gpg
                   only with recipients: the three files above in a tar.gz, encrypted to
                   every OpenPGP key in the recipients file; each recipient decrypts it
                   alone with "gpg --decrypt"

Options:
  -o DIR              where to write (default: ENV's directory; made, mode 0700,
                      if missing)
  --recipients FILE   armored OpenPGP public keys to encrypt the archive to (default:
                      gpgkeys.txt next to ENV, if there). Expired, revoked and
                      sign-only keys are refused.
  --meta-data FILE    cloud-init meta-data for the ISO, e.g. with a static network
                      config (default: meta-data.custom next to ENV, if there; else
                      instance-id and local-hostname from the domain)

An output that would replace an input (e.g. an ENV named env.yml.pdf) is refused as a
usage error.
`

func runBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("build", flag.ContinueOnError)
	outDir := fs.String("o", "", "")
	recipientsPath := fs.String("recipients", "", "")
	metaPath := fs.String("meta-data", "", "")
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	envPath := pos[0]
	dir := filepath.Dir(envPath)
	if *outDir == "" {
		*outDir = dir
	}
	// The original's sibling files, used when no option names another file.
	*recipientsPath = orSibling(*recipientsPath, dir, "gpgkeys.txt")
	*metaPath = orSibling(*metaPath, dir, "meta-data.custom")

	e, raw, err := loadEnv(envPath, stderr)
	if err != nil {
		return err
	}
	now := time.Now()
	pdfPath := filepath.Join(*outDir, "env.yml.pdf")
	isoPath := filepath.Join(*outDir, "env-cidata.iso")
	gpgPath := filepath.Join(*outDir, bundle.Name(e.Appliance.Domain, now))
	if err := refuseInputs([]string{pdfPath, isoPath, gpgPath}, []string{envPath, *recipientsPath, *metaPath}); err != nil {
		return err
	}
	// Parse the recipients before the slow steps so a bad key fails at once.
	var recipients openpgp.EntityList
	if *recipientsPath != "" {
		f, err := os.Open(*recipientsPath)
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		recipients, err = bundle.ReadRecipients(f, *recipientsPath)
		f.Close()
		if err != nil {
			return err
		}
	}
	meta := cidata.MetaData(e.Appliance.Domain)
	if *metaPath != "" {
		if meta, err = os.ReadFile(*metaPath); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	// Made only for a valid env; 0700 like new's, as it receives the secrets.
	if err := os.MkdirAll(*outDir, 0o700); err != nil {
		return err
	}

	// Every output goes to a temporary file next to it, and all are renamed into place
	// together once all are complete: a build that fails or is interrupted leaves the
	// previous bundle as it was, and no temporary file. They are created before the
	// slow rendering so that an unwritable DIR fails at once.
	targets := []string{pdfPath, isoPath}
	if recipients != nil {
		targets = append(targets, gpgPath)
	}
	var outs []*atomicfile.File
	defer func() {
		for _, f := range outs {
			f.Abort() // after CommitAll, does nothing
		}
	}()
	for _, p := range targets {
		f, err := atomicfile.Create(p, atomicfile.Options{Perm: 0o600})
		if err != nil {
			return err
		}
		outs = append(outs, f)
	}

	var pdf bytes.Buffer
	st, err := qrpaper.Render(ctx, &pdf, qrpaper.Paper{Domain: e.Appliance.Domain, Created: now, Name: "env.yml", Data: raw})
	if err := interrupted(ctx); err != nil {
		return err
	}
	if err != nil {
		return err
	}
	if _, err := outs[0].Write(pdf.Bytes()); err != nil {
		return err
	}
	if err := cidata.Fill(outs[1].File, cidata.Files{UserData: raw, MetaData: meta, PDF: pdf.Bytes()}); err != nil {
		return err
	}
	if recipients != nil {
		if err := interrupted(ctx); err != nil {
			return err
		}
		iso, err := os.ReadFile(outs[1].Name())
		if err != nil {
			return err
		}
		files := []bundle.File{
			{Name: "env.yml", Data: raw},
			{Name: "env.yml.pdf", Data: pdf.Bytes()},
			{Name: "env-cidata.iso", Data: iso},
		}
		if err := bundle.Seal(outs[2], recipients, files, now); err != nil {
			return err
		}
	}
	if err := interrupted(ctx); err != nil {
		return err
	}
	if err := atomicfile.CommitAll(outs...); err != nil {
		return err
	}

	fmt.Fprintf(stdout, "wrote %s: %d pages (%d of text, %d of QR codes holding %d codes, 1 of instructions), sha256 %s\n",
		pdfPath, st.Pages, st.TextPages, st.QRPages, st.QRCodes, st.SHA256)
	fmt.Fprintf(stdout, "wrote %s: attach it to the VM as a CD-ROM\n", isoPath)
	if recipients == nil {
		fmt.Fprintln(stdout, "no recipients (no --recipients, no gpgkeys.txt): no encrypted archive")
	} else {
		fmt.Fprintf(stdout, "wrote %s: encrypted to %d key(s)\n", gpgPath, len(recipients))
	}
	return nil
}

// refuseInputs fails when an output would replace an input, by whatever path either
// is named (relative, through a symlink, a hard link): the build would destroy the
// very env it packages, and report success.
func refuseInputs(outputs, inputs []string) error {
	for _, out := range outputs {
		outAbs, err := filepath.Abs(out)
		if err != nil {
			return err
		}
		outSt, outErr := os.Stat(out)
		for _, in := range inputs {
			if in == "" {
				continue
			}
			inAbs, err := filepath.Abs(in)
			if err != nil {
				return err
			}
			inSt, inErr := os.Stat(in)
			if inAbs == outAbs || outErr == nil && inErr == nil && os.SameFile(inSt, outSt) {
				return fmt.Errorf("%w: the output %s would replace the input %s; rename the input or choose another -o DIR", errUsage, out, in)
			}
		}
	}
	return nil
}

// orSibling returns path, or dir/name if path is empty and that file exists.
func orSibling(path, dir, name string) string {
	if path != "" {
		return path
	}
	if p := filepath.Join(dir, name); fileExists(p) {
		return p
	}
	return ""
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
