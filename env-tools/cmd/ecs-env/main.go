// Command ecs-env is the admin's tool for env.yml, the file that configures an ECS
// appliance: it creates one with fresh secrets, checks it, builds the bundle to attach
// to the VM and keep (PDF with QR codes, cidata ISO, encrypted archive), restores it
// from scanned paper, and flattens it for shell scripts.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `ecs-env — create, check and package the env.yml of an ECS appliance

Usage:
  ecs-env new DOMAIN [-o DIR] [--extra extra.yml] [--key-type rsa3072|ed25519]
  ecs-env check ENV
  ecs-env build ENV [-o DIR] [--recipients FILE] [--meta-data FILE]
  ecs-env restore IMAGE... [-o FILE]
  ecs-env flatten [--prefix P] KEYS [ENV]

Typical use: "ecs-env new ecs.example.org" writes ./env.yml with new secrets; edit it
(see the comments in it), run "ecs-env check env.yml", then "ecs-env build env.yml"
and attach env-cidata.iso to the VM. Print env.yml.pdf and keep it safe: it holds the
secrets, and "ecs-env restore" (or the one-liner printed on it) restores env.yml from it.

Run "ecs-env COMMAND --help" for the details of a command.
Exit status: 0 success, 1 failure (for check: the env is invalid), 2 usage error.
Interrupted (SIGINT, SIGTERM), a command removes what it started, writes nothing and
exits 1; a second signal ends it at once.
`

// errUsage marks errors in how the command was called (exit status 2).
var errUsage = errors.New("usage")

type command struct {
	run  func(ctx context.Context, args []string, stdout, stderr io.Writer) error
	help string
}

var commands = map[string]command{
	"new":     {runNew, newHelp},
	"check":   {noContext(runCheck), checkHelp},
	"build":   {runBuild, buildHelp},
	"restore": {runRestore, restoreHelp},
	"flatten": {noContext(runFlatten), flattenHelp},
}

// noContext adapts a command that writes no files and is quick, so it need not stop
// early when interrupted.
func noContext(f func(args []string, stdout, stderr io.Writer) error) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(_ context.Context, args []string, stdout, stderr io.Writer) error {
		return f(args, stdout, stderr)
	}
}

func main() {
	// Killed by a signal, a build would leave plaintext temporary files (in /dev/shm
	// and next to its outputs): instead the signal cancels ctx, the command stops at
	// its next check and its deferred cleanup runs. A second signal kills at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// interrupted returns the error a command stops with once ctx is cancelled, or nil.
func interrupted(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	return fmt.Errorf("interrupted (%v): nothing was written", context.Cause(ctx))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "ecs-env: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	err := cmd.run(ctx, args[1:], stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stdout, cmd.help)
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "ecs-env %s: %v\n\n%s", args[0], err, cmd.help)
		return 2
	case errors.Is(err, errReported):
		return 1
	}
	fmt.Fprintf(stderr, "ecs-env %s: %v\n", args[0], err)
	return 1
}

// errReported means the command already printed its problems.
var errReported = errors.New("failed")

// parseArgs parses flags anywhere among the arguments ("new DOMAIN -o DIR" as well as
// "new -o DIR DOMAIN"), which the standard flag package alone does not, and checks
// the number of positional arguments.
func parseArgs(fs *flag.FlagSet, args []string, minPos, maxPos int) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) < minPos || maxPos >= 0 && len(pos) > maxPos {
		return nil, fmt.Errorf("%w: wrong number of arguments (%s)", errUsage, strings.Join(pos, " "))
	}
	return pos, nil
}
