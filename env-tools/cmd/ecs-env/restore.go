package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/ethikkom/ecs-appliance/env-tools/qrpaper"
	"github.com/ethikkom/ecs-appliance/internal/atomicfile"
)

const restoreHelp = `Usage: ecs-env restore IMAGE... [-o FILE]

Restores env.yml from the QR codes of a printed env.yml.pdf: scan the QR pages (150 dpi
or more; PNG or JPEG) and pass the images in any order. Every code must be present: a
missing one is named ("missing 3/7"). The result is checked against the sha256 printed
on the paper; a damaged or incomplete set never writes a file.

Without this tool, the one-liner printed on the last page of the PDF does the same
with pdftoppm, zbarimg, base64 and gunzip.

Options:
  -o FILE   where to write the env (default env.yml; never overwritten; mode 0600)

Exit status: 0 restored, 1 failed (no image, damaged or incomplete set), 2 usage error
(e.g. an image that cannot be read).
`

func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	out := fs.String("o", "env.yml", "")
	pos, err := parseArgs(fs, args, 1, -1)
	if err != nil {
		return err
	}
	imgs, err := qrpaper.LoadImages(pos...)
	var unreadable *os.PathError
	if errors.As(err, &unreadable) {
		// As check and build treat an env they cannot read.
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if err != nil {
		return err
	}
	data, err := qrpaper.Restore(imgs)
	if err != nil {
		return err
	}
	// Decoding many scans takes a while; a signal during it must not yield a file.
	if err := interrupted(ctx); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(*out, data, atomicfile.Options{Perm: 0o600, NoOverwrite: true}); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s: %d bytes, sha256 %x\n", *out, len(data), sha256.Sum256(data))
	return nil
}
