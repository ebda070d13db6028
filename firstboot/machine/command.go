package machine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// Command is a program the agent runs. Secrets go in Stdin, never in Args or Env:
// arguments are visible to every user in /proc and are quoted in errors.
type Command struct {
	Name  string
	Args  []string
	Stdin []byte   // e.g. a password or a key
	Env   []string // added to a minimal environment (PATH, LANG=C)
	Dir   string
	User  string // run as this user of the machine (runuser), "" as the agent
	// Stderr, when set, also gets the standard error of a successful run (warnings).
	Stderr io.Writer
	// Input and Output, when set, stream large data (a database dump) instead of
	// Stdin and the returned output.
	Input  io.Reader
	Output io.Writer
}

// Run runs c and returns its standard output. A failure names the command and carries
// its standard error (trimmed), never Stdin.
func (m *Machine) Run(ctx context.Context, c Command) ([]byte, error) {
	name, args := c.Name, c.Args
	if c.User != "" {
		args = append([]string{"-u", c.User, "--", name}, args...)
		name = "runuser"
	}
	cmd := exec.CommandContext(ctx, name, args...)
	// The agent's own environment is not passed on: nothing of it is a child's business.
	cmd.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"}, c.Env...)
	if c.Dir != "" {
		cmd.Dir = c.Dir
	} else {
		cmd.Dir = os.TempDir()
	}
	if c.Stdin != nil {
		cmd.Stdin = bytes.NewReader(c.Stdin)
	} else if c.Input != nil {
		cmd.Stdin = c.Input
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if c.Output != nil {
		cmd.Stdout = c.Output
	}
	if c.Stderr != nil {
		cmd.Stderr = io.MultiWriter(&stderr, c.Stderr)
	}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.Bytes(), fmt.Errorf("%s: %w: %s", quote(c.Name, c.Args), err, msg)
	}
	return stdout.Bytes(), nil
}
