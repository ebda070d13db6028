// Package update is the appliance's update timer: appliance-update.timer starts
// appliance-update.service (`appliance-agent update`, static in the image) at
// appliance.update.oncalendar. With appliance.update.automatic false the timer is
// masked (its path links to /dev/null), as the original did.
package update

import (
	"bytes"
	"context"
	_ "embed"
	"text/template"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
)

const (
	Timer     = "appliance-update.timer"
	TimerPath = "/etc/systemd/system/" + Timer
)

//go:embed appliance-update.timer.tmpl
var timerText string

var timer = template.Must(template.New(Timer).Parse(timerText))

// Service is the update timer.
type Service struct{}

func automatic(e *env.Env) bool {
	return e.Appliance.Update.Automatic == nil || *e.Appliance.Update.Automatic
}

// Spec implements services.Service.
func (Service) Spec(e *env.Env) services.Spec {
	s := services.Spec{Name: "update", Reads: []string{"appliance.update.automatic", "appliance.update.oncalendar"}, Reload: services.Restart}
	if automatic(e) {
		s.Units = []string{Timer}
	}
	return s
}

// Prepare masks the timer when updates are not automatic, and stops it if it runs.
func (Service) Prepare(ctx context.Context, c *services.Context) error {
	if automatic(c.Env) {
		return nil
	}
	did, err := c.M.EnsureLink("/dev/null", TimerPath)
	if err != nil || did == "" {
		return err
	}
	c.M.Out.Detail("%s: appliance.update.automatic is false", did)
	c.Did()
	if err := c.M.Systemd.DaemonReload(ctx); err != nil {
		return err
	}
	return c.M.Systemd.Stop(ctx, Timer)
}

// Files implements services.Service: the timer, when updates are automatic (it
// replaces the mask link of an earlier env).
func (Service) Files(c *services.Context) ([]machine.File, error) {
	if !automatic(c.Env) {
		return nil, nil
	}
	var b bytes.Buffer
	if err := timer.Execute(&b, c.Env.Appliance.Update.OnCalendar); err != nil {
		return nil, err
	}
	return []machine.File{{Path: TimerPath, Data: b.Bytes()}}, nil
}
