package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/metrics"
	"github.com/ethikkom/ecs-appliance/firstboot/services/app"
	"github.com/ethikkom/ecs-appliance/firstboot/status"
)

// Paths of the update.
const (
	// FlagsDir holds the original's force flags (force.update.<what>), each removed
	// once the run it asked for has happened.
	FlagsDir = "/app/etc/flags"
	// RebootRequired is where Debian's packages ask for a reboot.
	RebootRequired = "/run/reboot-required"
)

// updateFlags are the force flags the update knows. The system, the application and
// the certificate are looked at on every run, so their flags only say "now"; docker,
// postgres and compose come from Debian's packages here, and their flags restart
// the application's stack after the system step, as the original did after such an
// update. force.update.appliance has nothing to act on: the agent is updated with a
// new disk image.
var updateFlags = []string{"system", "ecs", "letsencrypt", "docker", "postgres", "compose", "appliance"}

// Update is what appliance-update.timer runs: Debian's security and regular updates
// (unattended-upgrades, which the image configures; apt's own timers are masked so
// nothing upgrades behind the appliance's back), then the application (app update),
// then the certificate (renew), then a reboot when a package asks for one. A step
// that fails is reported and the steps after it still run; the run fails if any did.
func Update(ctx context.Context, opt Options) error {
	b, err := resume(opt)
	if err != nil {
		return err
	}
	m := b.m
	started := b.opt.Now()
	updateMetrics(m, started, 0, false)
	flags := takeFlags(m)
	var failed []string
	step := func(name string, fn func() error) {
		m.Out.Line("update: %s", name)
		if err := fn(); err != nil {
			m.Out.Line("update: %s failed: %v", name, err)
			failed = append(failed, fmt.Sprintf("%s: %v", name, err))
		}
	}
	step("system packages", func() error { return upgradeSystem(ctx, b) })
	if flags["docker"] || flags["postgres"] || flags["compose"] {
		step("restart of the application's stack (force flag)", func() error { return m.Systemd.Restart(ctx, app.Unit) })
	}
	if m.Live() {
		step("application", func() error { return UpdateApp(ctx, opt) })
	} else {
		m.Out.Detail("would update the application (not the running system)")
	}
	step("certificate", func() error { return Renew(ctx, opt) })
	if flags["appliance"] {
		m.Out.Line("update: force.update.appliance: the agent is updated with a new disk image, not in place")
	}
	elapsed := b.opt.Now().Sub(started)
	updateMetrics(m, started, elapsed, len(failed) > 0)
	if len(failed) > 0 {
		msg := "update failed: " + strings.Join(failed, "; ")
		sendReport(ctx, m, b.env, nil, "update", msg)
		return errors.New(msg)
	}
	if _, err := os.Stat(m.Path(RebootRequired)); err == nil {
		writeUpdateMetric(m, "update_last_reboot", "Time of the last reboot an update asked for, Unix time.", b.opt.Now())
		showing(b, "Rebooting: an updated package asks for it.")
		m.Out.Line("update: rebooting, %s exists", RebootRequired)
		if !m.Live() {
			m.Out.Detail("would reboot (not the running system)")
			return nil
		}
		_, err := m.Run(ctx, machine.Command{Name: "systemctl", Args: []string{"reboot"}})
		return err
	}
	m.Out.Line("update: done in %s", elapsed.Round(time.Second))
	return nil
}

// upgradeSystem runs apt's update and Debian's unattended-upgrades.
func upgradeSystem(ctx context.Context, b *boot) error {
	m := b.m
	if !m.Live() {
		m.Out.Detail("would run apt-get update and unattended-upgrade (not the running system)")
		return nil
	}
	// Packages may restart services: the page says why, and goes back to what it was.
	if prev, err := status.Read(b.root); err == nil {
		defer func() {
			if err := status.Publish(b.root, prev); err != nil {
				m.Out.Line("cannot publish status: %v", err)
			}
		}()
	}
	showing(b, "Unattended system upgrades")
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	// Without --error-on=any a mirror out of reach is only a warning (exit 0), and the
	// upgrade would go on with old lists, the site never told.
	if _, err := m.Run(ctx, machine.Command{Name: "apt-get", Args: []string{"-q", "--error-on=any", "update"}, Env: env}); err != nil {
		return err
	}
	if _, err := m.Run(ctx, machine.Command{Name: "unattended-upgrade", Args: []string{"-v"}, Env: env}); err != nil {
		return err
	}
	writeUpdateMetric(m, "system_last_update", "Time of the last system upgrade, Unix time.", b.opt.Now())
	return nil
}

// takeFlags reads and removes the force flags; an unknown one is named and left.
func takeFlags(m *machine.Machine) map[string]bool {
	flags := map[string]bool{}
	entries, _ := os.ReadDir(m.Path(FlagsDir))
	for _, e := range entries {
		what, ok := strings.CutPrefix(e.Name(), "force.update.")
		if !ok {
			continue
		}
		known := false
		for _, f := range updateFlags {
			known = known || f == what
		}
		if !known {
			m.Out.Line("update: unknown flag %s left in %s", e.Name(), FlagsDir)
			continue
		}
		flags[what] = true
		if err := os.Remove(filepath.Join(m.Path(FlagsDir), e.Name())); err == nil {
			m.Out.Line("update: flag %s taken", e.Name())
		}
	}
	return flags
}

// showing puts msg on the status page, keeping the rest of what it shows.
func showing(b *boot, msg string) {
	s, err := status.Read(b.root)
	if err != nil {
		s = status.Status{}
	}
	s.State, s.Title, s.Message, s.Phase, s.Time = status.Starting, "Appliance Update", msg, "update", b.opt.Now()
	if err := status.Publish(b.root, s); err != nil {
		b.m.Out.Line("cannot publish status: %v", err)
	}
}

// updateMetrics writes the run's figures: at its start the call alone (a run that
// never ends still counts for UpdateMissed), at its end all of them.
func updateMetrics(m *machine.Machine, started time.Time, elapsed time.Duration, failed bool) {
	gauges := []metrics.Gauge{{Name: "update_last_call", Help: "Start of the last update run, Unix time.", Value: float64(started.Unix())}}
	if elapsed > 0 {
		gauges = append(gauges,
			metrics.Gauge{Name: "update_running_time", Help: "Duration of the last update run, seconds.", Value: elapsed.Seconds()},
			metrics.Gauge{Name: "update_last_failed", Help: "1 if a step of the last update run failed.", Value: boolValue(failed)})
	}
	if err := metrics.Write(m, "update", gauges...); err != nil {
		m.Out.Line("metrics: %v", err)
	}
}

// writeUpdateMetric keeps one time in a textfile of its own, so that it stays from
// the run that set it.
func writeUpdateMetric(m *machine.Machine, name, help string, t time.Time) {
	if err := metrics.Write(m, name, metrics.Gauge{Name: name, Help: help, Value: float64(t.Unix())}); err != nil {
		m.Out.Line("metrics: %v", err)
	}
}

func boolValue(v bool) float64 {
	if v {
		return 1
	}
	return 0
}
