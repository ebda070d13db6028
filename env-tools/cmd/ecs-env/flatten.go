package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ethikkom/ecs-appliance/env"
)

const flattenHelp = `Usage: ecs-env flatten [--prefix P] KEYS [ENV]

Prints the selected top-level keys of ENV as shell assignments, one per line, sorted,
for scripts that "eval" them (the original appliance's flatyaml):

  appliance.ssl.key          → APPLIANCE_SSL_KEY='…'
  appliance.extra.files[0]   → APPLIANCE_EXTRA_FILES_0_PATH=…, APPLIANCE_EXTRA_FILES_LEN=1

KEYS is a comma-separated list of top-level keys (e.g. appliance,ecs) or "." for all.
Values are quoted for the shell exactly (multi-line keys keep their newlines); a key
that is not letters, digits and _ is an error. ENV defaults to $ENV_YML, else
/run/active-env.yml. The output holds secrets: do not log it.

Options:
  --prefix P   put P before each line, e.g. --prefix 'export '
`

func runFlatten(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("flatten", flag.ContinueOnError)
	prefix := fs.String("prefix", "", "")
	pos, err := parseArgs(fs, args, 1, 2)
	if err != nil {
		return err
	}
	path := os.Getenv("ENV_YML")
	if path == "" {
		path = "/run/active-env.yml"
	}
	if len(pos) == 2 {
		path = pos[1]
	}
	e, _, err := loadEnv(path, stderr)
	if err != nil {
		return err
	}
	lines, missing, err := env.Flatten(e, strings.Split(pos[0], ","), *prefix)
	if err != nil {
		return err // names the file, line and column
	}
	for _, k := range missing {
		fmt.Fprintf(stderr, "ecs-env flatten: %s has no key %q\n", path, k)
	}
	for _, l := range lines {
		if _, err := fmt.Fprintln(stdout, l); err != nil {
			return err
		}
	}
	return nil
}
