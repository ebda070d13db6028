package storage

import (
	"context"

	"github.com/ethikkom/ecs-appliance/firstboot/machine"
)

// Services stops and starts the units whose state a relocation moves.
type Services interface {
	// Stop stops those of units that are running and returns them, in order.
	Stop(ctx context.Context, units []string) ([]string, error)
	// Start starts units.
	Start(ctx context.Context, units []string) error
}

// units is Services on the machine's systemd. Only running units are stopped and
// started again, so a relocation never starts a service the machine does not run.
type units struct{ sd *machine.Systemd }

func (u units) Stop(ctx context.Context, names []string) ([]string, error) {
	active, err := u.sd.Active(ctx, names)
	if err != nil {
		return nil, err
	}
	return active, u.sd.Stop(ctx, active...)
}

func (u units) Start(ctx context.Context, names []string) error {
	return u.sd.Start(ctx, names...)
}
