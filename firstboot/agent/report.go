package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/alertrelay"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/report"
	"github.com/ethikkom/ecs-appliance/firstboot/services/monitoring"
	"github.com/ethikkom/ecs-appliance/firstboot/state"
)

// report sends a failure to the env's Sentry DSN when it names one. A delivery that
// fails is a line of output, never a second failure.
func (b *boot) report(ctx context.Context, group, msg string) {
	sendReport(ctx, b.m, b.env, b.store, group, msg)
}

func sendReport(ctx context.Context, m *machine.Machine, e *env.Env, store *state.Store, group, msg string) {
	if e == nil || e.Appliance.Sentry.DSN == "" {
		return
	}
	tags := map[string]string{}
	if store != nil {
		if all, err := store.Tags(ctx); err == nil {
			for _, t := range all {
				tags[t.Name] = t.Value
			}
		}
	}
	err := report.Sender{DSN: e.Appliance.Sentry.DSN, Site: e.Appliance.Domain, Tags: tags}.Send(report.Failure{Group: group, Message: msg})
	if err != nil {
		m.Out.Line("sentry: %v", err)
		return
	}
	m.Out.Line("sentry: reported the failure of %s", group)
}

// ReportFailure sends the failure of a systemd unit to Sentry: what
// appliance-failed@.service runs for the appliance's units (their OnFailure). It
// works in the failed state too, when it matters most.
func ReportFailure(ctx context.Context, opt Options, unit string) error {
	m, e, err := activeEnv(opt)
	if err != nil {
		return err
	}
	if e.Appliance.Sentry.DSN == "" {
		m.Out.Line("sentry: no appliance.sentry.dsn; the failure of %s is in its journal", unit)
		return nil
	}
	if _, err := os.Stat(m.Path("/" + FailedPath)); err == nil && unit == "appliance-agent.service" {
		m.Out.Line("sentry: the agent reported its own failure")
		return nil
	}
	msg := "unit " + unit + " failed"
	if m.Live() {
		// systemd's own words for how it ended (exit-code, timeout, signal …).
		out, err := m.Run(ctx, machine.Command{Name: "systemctl", Args: []string{"show", "--value", "-p", "Result,ExecMainStatus", unit}})
		if err == nil {
			f := strings.Fields(string(out))
			if len(f) == 2 {
				msg = fmt.Sprintf("unit %s failed: result %s, exit status %s", unit, f[0], f[1])
			}
		}
	}
	store, err := OpenState(ctx, m.Root())
	if err == nil {
		defer store.Close()
	} else {
		store = nil
	}
	sendReport(ctx, m, e, store, unit, msg)
	return nil
}

// activeEnv is the machine and the env the boot activated.
func activeEnv(opt Options) (*machine.Machine, *env.Env, error) {
	m, err := machine.New(opt.Root, opt.Out)
	if err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(m.Path("/" + ActiveEnvPath))
	if err != nil {
		return nil, nil, errors.New("no active env (/" + ActiveEnvPath + "): nowhere to report to")
	}
	e, _, err := env.Parse("/"+ActiveEnvPath, data)
	return m, e, err
}

// AlertRelay serves Alertmanager's webhook on monitoring.RelayAddress until ctx ends,
// sending each alert to Sentry (appliance-alert-relay.service).
func AlertRelay(ctx context.Context, opt Options) error {
	m, e, err := activeEnv(opt)
	if err != nil {
		return err
	}
	if e.Appliance.Sentry.DSN == "" {
		return errors.New("appliance.sentry.dsn is not set: no Sentry to relay alerts to")
	}
	sender := report.Sender{DSN: e.Appliance.Sentry.DSN, Site: e.Appliance.Domain}
	m.Out.Line("relaying Alertmanager's alerts from %s to appliance.sentry.dsn", monitoring.RelayAddress)
	return alertrelay.Serve(ctx, monitoring.RelayAddress, alertrelay.Handler(sender.Send, m.Out.Line))
}
