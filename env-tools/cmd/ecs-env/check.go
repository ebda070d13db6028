package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/ethikkom/ecs-appliance/env"
)

const checkHelp = `Usage: ecs-env check ENV

Checks ENV (an env.yml) the way the appliance will read it: the #cloud-config header,
every key of appliance: and ecs: (unknown keys, types, required keys), and the values
(domain, TLS key and certificate, DKIM and OpenPGP keys, extra files, update calendar,
backup URL, storage setup). Every error is listed as FILE:LINE:COLUMN: message.
Warnings (keys that do nothing, test-only values) go to stderr and do not fail.

Exit status: 0 valid, 1 invalid, 2 usage error (e.g. no such file).
`

func runCheck(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	pos, err := parseArgs(fs, args, 1, 1)
	if err != nil {
		return err
	}
	if _, _, err := loadEnv(pos[0], stderr); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: valid\n", pos[0])
	return nil
}

// loadEnv reads and validates an env.yml, printing warnings and every error to
// stderr, and returns it with the bytes it was parsed from. A file that cannot be
// read is a usage error.
func loadEnv(path string, stderr io.Writer) (*env.Env, []byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	e, warns, err := env.Parse(path, raw)
	for _, w := range warns {
		fmt.Fprintln(stderr, w)
	}
	var list env.ErrorList
	switch {
	case err == nil:
		return e, raw, nil
	case errors.As(err, &list):
		for _, e := range list {
			fmt.Fprintln(stderr, e)
		}
		fmt.Fprintf(stderr, "%s: %d error(s)\n", path, len(list))
		return nil, nil, errReported
	}
	return nil, nil, err
}
