// Package machine is the one context every phase and service of the agent works
// through: paths under the machine's root, a file writer that writes only what
// differs and reports it, the systemd client, a command runner that hands secrets to
// children on stdin, and the reporter of the agent's uniform output lines.
//
// Under a root other than "/" nothing acts on the host: files are written inside the
// tree, systemctl runs with --root for what that means (enable, mask) and everything
// else (start, reload, daemon-reload, health probes) is only reported as "would …".
package machine

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/ethikkom/ecs-appliance/firstboot/accounts"
)

// Machine is the machine the agent converges.
type Machine struct {
	root     string
	Out      *Reporter
	Systemd  *Systemd
	accounts *accounts.DB
}

// New returns the machine whose tree is root ("" or "/" is the running system).
func New(root string, out io.Writer) (*Machine, error) {
	if root == "" {
		root = "/"
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", root, err)
	}
	r := &Reporter{w: out}
	m := &Machine{root: abs, Out: r}
	m.Systemd = &Systemd{live: m.Live(), root: abs, out: r}
	return m, nil
}

// Root is the machine's root directory.
func (m *Machine) Root() string { return m.root }

// Live reports whether this is the running system, where services are started and
// probed; under another root the agent only prepares the tree.
func (m *Machine) Live() bool { return m.root == "/" }

// Path is p (an absolute path on the machine) inside the root. p may not leave it.
func (m *Machine) Path(p string) string {
	clean := filepath.Clean("/" + p)
	return filepath.Join(m.root, clean)
}

// Accounts are the machine's users and groups (its own etc/passwd and etc/group),
// read once.
func (m *Machine) Accounts() *accounts.DB {
	if m.accounts == nil {
		m.accounts = accounts.Load(m.root)
	}
	return m.accounts
}

// Reporter prints the agent's lines: "appliance-agent: " and an indented message.
type Reporter struct{ w io.Writer }

// Line prints one line of the agent's output, e.g. a phase's result.
func (r *Reporter) Line(format string, args ...any) {
	if r == nil || r.w == nil {
		return
	}
	fmt.Fprintf(r.w, "appliance-agent: "+format+"\n", args...)
}

// Detail prints what a phase did, indented under its result line.
func (r *Reporter) Detail(format string, args ...any) {
	r.Line("  "+format, args...)
}

// quote shows a command for reports; arguments never carry secrets (see Run).
func quote(name string, args []string) string {
	return strings.Join(append([]string{name}, args...), " ")
}

// HostAccounts are the users of the system the agent runs on, for the service
// checkers it runs there (they run on the host also when the agent works on a tree).
func HostAccounts() *accounts.DB { return accounts.Load("/") }
