package storage

import (
	"context"
	"errors"
	"os/exec"
)

// Services stops and starts the services whose state a relocation moves.
type Services interface {
	// Stop stops those of units that are running and returns them, in order.
	Stop(ctx context.Context, units []string) ([]string, error)
	// Start starts units, in the order given.
	Start(ctx context.Context, units []string) error
}

// Systemctl controls systemd units. Only running units are stopped and started again,
// so a relocation never starts a service the machine does not run (cadvisor without
// metrics, say).
type Systemctl struct{}

// Stop implements Services.
func (Systemctl) Stop(ctx context.Context, units []string) ([]string, error) {
	var stopped []string
	for _, u := range units {
		err := exec.CommandContext(ctx, "systemctl", "is-active", "--quiet", u).Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			continue // inactive, failed or unknown
		}
		if err != nil {
			return stopped, err
		}
		if _, err := run(ctx, "systemctl", "stop", u); err != nil {
			return stopped, err
		}
		stopped = append(stopped, u)
	}
	return stopped, nil
}

// Start implements Services.
func (Systemctl) Start(ctx context.Context, units []string) error {
	for _, u := range units {
		if _, err := run(ctx, "systemctl", "start", u); err != nil {
			return err
		}
	}
	return nil
}
