// Package agent is the first-boot agent's run: at every boot it converges the machine
// to its env.yml in phases (discover → activate → storage → state → prepare →
// configure → start → verify), publishes what it is doing on the status page, records the run in the state
// store, and on failure stops in a clear failed state that reset-failed clears.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/discovery"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/state"
	"github.com/ethikkom/ecs-appliance/firstboot/status"
	"github.com/ethikkom/ecs-appliance/firstboot/storage"
)

// Phases in the order Boot runs them.
var Phases = []string{"discover", "activate", "storage", "state", "prepare", "configure", "start", "verify", "app"}

// Paths under the root.
const (
	FailedPath    = "run/appliance-failed" // blocks the stack's units until reset-failed
	ActiveEnvPath = "run/active-env.yml"   // the env in use, 0600
	StateDir      = "data/appliance/state" // the state store, on the data filesystem
	StateAddress  = "127.0.0.1:9001"       // a single node listens on loopback only
	envSHA256Tag  = "active_env_sha256"    // which env the last run applied
	// verifyDeadline is how long the health checks may take to pass after the start.
	verifyDeadline = 5 * time.Minute
)

// Options configure one run.
type Options struct {
	Root    string   // every path is taken under it; "" means "/"
	Devices []string // block devices to search and partition instead of all
	EnvYML  string   // the value of $ENV_YML
	Until   string   // stop after this phase; "" runs all
	Out     io.Writer
	Mount   storage.MountFunc // nil runs mount(8)
	Now     func() time.Time
	Facts   *services.Facts // the machine's memory and cores; nil reads them
}

// ErrFailed is returned when the machine is already in the failed state.
var ErrFailed = errors.New("the appliance is in the failed state (" + "/" + FailedPath + "); fix the cause, then run: appliance-agent reset-failed")

// boot is one run in progress.
type boot struct {
	opt     Options
	root    string
	m       *machine.Machine
	sc      *services.Context // the services' run, from the configure phase on
	states  []services.State
	run     state.Run
	found   *discovery.Result
	env     *env.Env
	store   *state.Store
	changed bool // did the machine's configuration change (not counting starting services)
	standby bool
	// appStatus is what the app phase left; appStandby why it stands by (no build).
	appStatus  *status.App
	appStandby string
}

// Boot runs the phases. It returns nil on success and in standby, and the failed
// phase's error otherwise, after recording and publishing it.
func Boot(ctx context.Context, opt Options) error {
	if opt.Out == nil {
		opt.Out = io.Discard
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Until != "" && !slices.Contains(Phases, opt.Until) {
		return fmt.Errorf("unknown phase %q (phases: %s)", opt.Until, strings.Join(Phases, ", "))
	}
	m, err := machine.New(opt.Root, opt.Out)
	if err != nil {
		return err
	}
	b := &boot{opt: opt, root: m.Root(), m: m, run: state.Run{Started: opt.Now()}}
	if _, err := os.Stat(b.path(FailedPath)); err == nil {
		return ErrFailed
	}
	defer b.closeStore()
	steps := map[string]func(context.Context) (bool, error){
		"discover": b.discover, "activate": b.activate, "storage": b.storage, "state": b.openState,
		"prepare": b.prepare, "configure": b.configure, "start": b.start, "verify": b.verify, "app": b.app,
	}
	for _, name := range Phases {
		b.publish(status.Starting, "Appliance Startup", "Starting up: "+name, name)
		started := opt.Now()
		changed, err := steps[name](ctx)
		result := state.ResultUnchanged
		switch {
		case err != nil:
			result = state.ResultFailed
		case changed:
			result = state.ResultOK
		}
		if err != nil && ctx.Err() != nil {
			// Asked to stop (SIGTERM, systemctl stop): not a failure of the phase.
			return b.stopped(name, started)
		}
		b.run.AddPhase(name, started, opt.Now(), result, err)
		m.Out.Line("%-9s %s (%s)", name, result, opt.Now().Sub(started).Round(time.Millisecond))
		if err != nil {
			return b.fail(ctx, name, err)
		}
		if b.standby || name == opt.Until {
			break
		}
	}
	return b.finish(ctx)
}

func (b *boot) path(p string) string { return filepath.Join(b.root, p) }

// stopped records a run the agent was asked to stop: no failed state, since nothing
// failed; the next boot or start runs again.
func (b *boot) stopped(phase string, started time.Time) error {
	err := errors.New("stopped: the agent was asked to stop")
	b.run.AddPhase(phase, started, b.opt.Now(), state.ResultFailed, err)
	b.run.Result, b.run.Ended, b.run.Error = state.ResultFailed, b.opt.Now(), fmt.Sprintf("phase %s: %v", phase, err)
	b.m.Out.Line("%-9s stopped (%s)", phase, b.opt.Now().Sub(started).Round(time.Millisecond))
	b.publish(status.Stopped, "Appliance Stopped", "The agent was stopped in phase "+phase+"; it runs again at the next boot or with: systemctl restart appliance-agent", phase)
	// The run's context is cancelled; recording must still happen.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(context.Background()), 10*time.Second)
	defer cancel()
	if serr := b.save(ctx); serr != nil {
		b.m.Out.Line("the stop was not recorded in the state store: %v", serr)
	}
	b.m.Out.Line("outcome stopped in %s", phase)
	return fmt.Errorf("%s: %w", phase, err)
}

// finish records a successful (or standby) run and prints the outcome line.
func (b *boot) finish(ctx context.Context) error {
	result := state.ResultUnchanged
	if b.changed {
		result = state.ResultOK
	}
	b.run.Result, b.run.Ended = result, b.opt.Now()
	if err := b.save(ctx); err != nil {
		return b.fail(ctx, "state", err)
	}
	b.writeMetrics(ctx)
	switch {
	case b.standby:
		b.m.Out.Line("outcome standby (appliance.standby is true: nothing started)")
	case b.appStandby != "":
		// No build to run: the page says why, and the next boot or update tries again.
		b.publish(b.appState())
		b.m.Out.Line("outcome standby (%s)", b.appStandby)
	case b.appStatus != nil:
		b.publish(b.appState())
		b.m.Out.Line("outcome %s", outcomeWord(result))
	case b.run.Phases[len(b.run.Phases)-1].Name == "app":
		// Not the running system: the host services' files are in place, no app runs.
		b.publish(status.Ready, "Appliance Ready", "The host services are configured; the application is deployed only on the running system.", "")
		b.m.Out.Line("outcome %s", outcomeWord(result))
	default:
		b.m.Out.Line("outcome %s (stopped after %s)", outcomeWord(result), b.opt.Until)
	}
	return nil
}

// appState is the status the app's lifecycle left: running (with what the admin must
// know), or standby with the reason there is no build to run.
func (b *boot) appState() (state, title, msg, phase string) {
	if b.appStandby != "" {
		return status.Standby, "Appliance Standby", b.appStandby, "app"
	}
	msg = "ECS " + b.appStatus.Serving + " is serving."
	if b.appStatus.Notice != "" {
		msg += " " + b.appStatus.Notice
	}
	return status.Running, "Appliance Running", msg, ""
}

func outcomeWord(r state.Result) string {
	if r == state.ResultUnchanged {
		return "unchanged"
	}
	return "changed"
}

// fail puts the machine in the failed state: the marker file, the error page naming
// the phase, the failure in the state store (when it can be opened), and the outcome.
func (b *boot) fail(ctx context.Context, phase string, err error) error {
	b.run.Result, b.run.Ended, b.run.Error = state.ResultFailed, b.opt.Now(), err.Error()
	msg := fmt.Sprintf("Phase %s failed: %v", phase, err)
	b.publish(status.Error, "Appliance Error", msg, phase)
	if werr := os.MkdirAll(filepath.Dir(b.path(FailedPath)), 0o755); werr == nil {
		werr = os.WriteFile(b.path(FailedPath), []byte(phase+"\n"), 0o644)
		if werr != nil {
			b.m.Out.Line("cannot write %s: %v", FailedPath, werr)
		}
	}
	if serr := b.recordFailure(context.WithoutCancel(ctx)); serr != nil {
		b.m.Out.Line("failure not recorded in the state store: %v", serr)
	}
	b.report(context.WithoutCancel(ctx), "boot", msg)
	b.m.Out.Line("outcome failed in %s: %v", phase, err)
	return fmt.Errorf("%s: %w", phase, err)
}

// recordFailure copies last_running_ecs to last_failed_ecs as the original's
// appliance-failed@ did, and saves the run. Unlike the original it keeps
// last_running_ecs: its image is still there, so the next boot starts it without the
// network instead of building again. Before storage exists there is nowhere to
// keep it; the status page still says what failed.
func (b *boot) recordFailure(ctx context.Context) error {
	if b.store == nil {
		if _, err := os.Stat(b.path("data")); err != nil || b.env == nil {
			return errors.New("no /data yet")
		}
		if _, err := b.openState(ctx); err != nil {
			return err
		}
	}
	last, ok, err := b.store.Tag(ctx, state.TagLastRunningECS)
	if err != nil {
		return err
	}
	if !ok {
		last = "invalid"
	}
	if err := b.store.SetTag(ctx, state.TagLastFailedECS, last); err != nil {
		return err
	}
	return b.save(ctx)
}

func (b *boot) save(ctx context.Context) error {
	if b.store == nil {
		return nil // stopped before the state phase: nothing to write to yet
	}
	if err := b.store.SaveRun(ctx, &b.run); err != nil {
		return err
	}
	if b.found != nil && !b.standby {
		return b.store.SetTag(ctx, envSHA256Tag, b.found.SHA256)
	}
	return nil
}

func (b *boot) closeStore() {
	if b.store != nil {
		b.store.Close()
	}
}

// publish writes the status page and JSON; failing to is reported, not fatal.
func (b *boot) publish(state, title, msg, phase string) {
	s := status.Status{State: state, Title: title, Message: msg, Phase: phase, Time: b.opt.Now(), Services: b.states, App: b.appStatus}
	if b.sc != nil && b.sc.Certificate != nil {
		s.Certificate = b.sc.Certificate
	}
	if b.env != nil {
		s.Domain = b.env.Appliance.Domain
	}
	if b.found != nil {
		s.Source, s.SHA256 = b.found.Source+" ("+b.found.From+")", b.found.SHA256
	}
	if err := status.Publish(b.root, s); err != nil {
		b.m.Out.Line("cannot publish status: %v", err)
	}
}

// ResetFailed clears the failed state so the next boot (or systemctl restart) runs,
// and says so on the status page, which showed the error until now.
func ResetFailed(root string) error {
	if root == "" {
		root = "/"
	}
	err := os.Remove(filepath.Join(root, FailedPath))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	s, err := status.Read(root)
	if err != nil || s.State != status.Error {
		return nil // nothing on the page to correct
	}
	s.State, s.Title, s.Time = status.Stopped, "Appliance Stopped", time.Now()
	s.Message = "The failed state (" + s.Phase + ") was cleared; the appliance starts at the next boot or with: systemctl restart appliance-agent"
	return status.Publish(root, s)
}
