package machine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// Systemd is the agent's one systemd client. On the running system it calls
// systemctl; under another root it changes only the tree (enable, mask with --root)
// and reports the rest as what it would do.
type Systemd struct {
	live bool
	root string
	out  *Reporter
}

// Active returns those of units that are active (running).
func (s *Systemd) Active(ctx context.Context, units []string) ([]string, error) {
	if !s.live || len(units) == 0 {
		return nil, nil
	}
	// is-active prints one state per unit and exits non-zero unless all are active.
	out, err := exec.CommandContext(ctx, "systemctl", append([]string{"is-active", "--"}, units...)...).Output()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return nil, fmt.Errorf("systemctl is-active: %w", err)
	}
	states := strings.Fields(string(out))
	var active []string
	for i, u := range units {
		if i < len(states) && states[i] == "active" {
			active = append(active, u)
		}
	}
	return active, nil
}

// Start starts units in one job transaction: systemd starts them in parallel, under
// the ordering the units declare, and the call returns when all have started.
func (s *Systemd) Start(ctx context.Context, units ...string) error {
	return s.act(ctx, "start", units)
}

// Stop stops units.
func (s *Systemd) Stop(ctx context.Context, units ...string) error {
	return s.act(ctx, "stop", units)
}

// Restart restarts units.
func (s *Systemd) Restart(ctx context.Context, units ...string) error {
	return s.act(ctx, "restart", units)
}

// ReloadOrRestart reloads units that can reload and restarts the others.
func (s *Systemd) ReloadOrRestart(ctx context.Context, units ...string) error {
	return s.act(ctx, "reload-or-restart", units)
}

// DaemonReload makes systemd read changed unit files.
func (s *Systemd) DaemonReload(ctx context.Context) error {
	if !s.live {
		return nil // systemd reads the tree's units when it boots it
	}
	return s.systemctl(ctx, "daemon-reload")
}

// Enable enables units (also in a tree: that is what --root is for).
func (s *Systemd) Enable(ctx context.Context, units ...string) error {
	return s.tree(ctx, "enable", units)
}

// Mask masks units.
func (s *Systemd) Mask(ctx context.Context, units ...string) error {
	return s.tree(ctx, "mask", units)
}

// Unmask unmasks units.
func (s *Systemd) Unmask(ctx context.Context, units ...string) error {
	return s.tree(ctx, "unmask", units)
}

func (s *Systemd) act(ctx context.Context, verb string, units []string) error {
	if len(units) == 0 {
		return nil
	}
	if !s.live {
		s.out.Detail("would %s %s (not the running system)", verb, strings.Join(units, " "))
		return nil
	}
	return s.systemctl(ctx, append([]string{verb, "--"}, units...)...)
}

func (s *Systemd) tree(ctx context.Context, verb string, units []string) error {
	if len(units) == 0 {
		return nil
	}
	args := []string{verb}
	if !s.live {
		args = append(args, "--root="+s.root)
	}
	return s.systemctl(ctx, append(append(args, "--"), units...)...)
}

func (s *Systemd) systemctl(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "systemctl", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s: %w: %s", quote("systemctl", args), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
