package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/agentconfig"
	"github.com/ethikkom/ecs-appliance/firstboot/discovery"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/app"
	"github.com/ethikkom/ecs-appliance/firstboot/state"
	"github.com/ethikkom/ecs-appliance/firstboot/status"
	"github.com/ethikkom/ecs-appliance/firstboot/storage"
	"github.com/ethikkom/ecs-appliance/internal/atomicfile"
)

// Discover finds env.yml as Boot would, changing nothing.
func Discover(ctx context.Context, root string, devices []string, envYML string) (*discovery.Result, error) {
	cfg, err := agentconfig.Load(root)
	if err != nil {
		return nil, err
	}
	return discovery.Discover(ctx, discovery.Options{Config: cfg, Root: root, EnvYML: envYML, Devices: devices})
}

func (b *boot) discover(ctx context.Context) (bool, error) {
	res, err := Discover(ctx, b.root, b.opt.Devices, b.opt.EnvYML)
	if res != nil {
		for _, r := range res.Reports {
			b.m.Out.Detail("source %-11s %s", r.Source, reportLine(r))
		}
	}
	if err != nil {
		return false, err
	}
	b.found = res
	return false, nil
}

func reportLine(r discovery.Report) string {
	s := r.Status.String()
	if r.From != "" {
		s += " " + r.From
	}
	if r.Reason != "" {
		s += ": " + r.Reason
	}
	return s
}

// activate validates the document and makes it the active env. Errors name
// file:line:col and never values (env guarantees that).
func (b *boot) activate(ctx context.Context) (bool, error) {
	name := b.found.Source + ":" + b.found.From
	e, warns, err := env.Parse(name, b.found.Document)
	for _, w := range warns {
		b.m.Out.Detail("%s", w)
	}
	if err != nil {
		return false, fmt.Errorf("env.yml is invalid:\n%w", err)
	}
	b.env = e
	p := b.path(ActiveEnvPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return false, err
	}
	if err := atomicfile.WriteFile(p, b.found.Document, atomicfile.Options{Perm: 0o600}); err != nil {
		return false, err
	}
	if e.Appliance.Standby {
		b.standby = true
		b.publish(status.Standby, "Appliance Standby", "appliance.standby is true in env.yml: nothing is started.", "activate")
	}
	// /run is rebuilt every boot; whether the env itself changed is known once the
	// state store is open (openState compares the digest).
	return false, nil
}

func (b *boot) storage(ctx context.Context) (bool, error) {
	dirs, rels := layout(b.env)
	res, err := storage.Ensure(ctx, storage.Options{Root: b.root, Storage: b.env.Appliance.Storage, Devices: blockDevices(b.opt.Devices),
		Mount: b.opt.Mount, Dirs: dirs, Relocations: rels})
	for _, a := range append(res.Actions, res.Mounted...) {
		b.m.Out.Detail("%s", a)
	}
	b.changed = b.changed || res.Changed()
	return res.Changed(), err
}

// blockDevices are those of the --device paths that are block devices: a seed image
// given for discovery is never a data disk.
func blockDevices(paths []string) []string {
	var devs []string
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0 {
			devs = append(devs, p)
		}
	}
	return devs
}

// openState opens the state store on /data (it exists now) and tells whether this
// env differs from the one the last run applied.
func (b *boot) openState(ctx context.Context) (bool, error) {
	dir := b.path(StateDir)
	_, statErr := os.Stat(dir)
	created := errors.Is(statErr, os.ErrNotExist)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, err
	}
	s, err := state.Open(ctx, dir, stateOptions(b.env))
	if err != nil {
		return false, err
	}
	b.store = s
	if b.found == nil {
		return created, nil
	}
	last, _, err := s.Tag(ctx, envSHA256Tag)
	if err != nil {
		return false, err
	}
	envChanged := last != b.found.SHA256
	b.changed = b.changed || created || envChanged
	return created || envChanged, nil
}

// stateOptions binds a single node to loopback, or joins the env's cluster.
func stateOptions(e *env.Env) state.Options {
	if e != nil && e.Appliance.Cluster.Bind != "" {
		return state.Options{Address: e.Appliance.Cluster.Bind, Join: e.Appliance.Cluster.Join}
	}
	return state.Options{Address: state.DefaultAddress}
}

// OpenState opens the state store a boot wrote, with the address it used (from the
// active env), for reading it after the boot has ended.
func OpenState(ctx context.Context, root string) (*state.Store, error) {
	dir := filepath.Join(root, StateDir)
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("no state store at %s: the agent has not reached its state phase", dir)
	}
	var e *env.Env
	if data, err := os.ReadFile(filepath.Join(root, ActiveEnvPath)); err == nil {
		e, _, _ = env.Parse(ActiveEnvPath, data) // an invalid env never became active
	}
	return state.Open(ctx, dir, stateOptions(e))
}

// prepare sets the hostname and the SSH keys of root and the app user from env.yml.
func (b *boot) prepare(ctx context.Context) (bool, error) {
	changed, err := b.hostname(ctx)
	if err != nil {
		return false, err
	}
	users := []string{"root", "app"}
	for _, u := range users {
		c, err := b.authorizedKeys(ctx, u)
		if err != nil {
			return false, err
		}
		changed = changed || c
	}
	b.changed = b.changed || changed
	return changed, nil
}

func (b *boot) hostname(ctx context.Context) (bool, error) {
	changed, err := b.m.WriteFile(ctx, machine.File{Path: "/etc/hostname", Data: []byte(b.env.Appliance.Domain + "\n")})
	if err != nil || !changed || !b.m.Live() {
		return changed, err
	}
	// The running kernel's name too, not only the file read at the next boot.
	_, err = b.m.Run(ctx, machine.Command{Name: "hostname", Args: []string{b.env.Appliance.Domain}})
	return true, err
}

// authorizedKeys adds ssh_authorized_keys to user's authorized_keys and removes
// ssh_deprecated_keys, keeping every other line, as the original's salt states did.
func (b *boot) authorizedKeys(ctx context.Context, user string) (bool, error) {
	acct, err := b.m.Accounts().User(user)
	if err != nil {
		return false, nil // no such user in this image: nothing to do
	}
	dir := filepath.Join(acct.Home, ".ssh")
	p := filepath.Join(dir, "authorized_keys")
	cur, err := os.ReadFile(b.m.Path(p))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	lines := strings.Split(strings.TrimRight(string(cur), "\n"), "\n")
	if len(cur) == 0 {
		lines = nil
	}
	var keep []string
	for _, l := range lines {
		if !slices.ContainsFunc(b.env.SSHDeprecatedKeys, func(k string) bool { return sameKey(k, l) }) {
			keep = append(keep, l)
		}
	}
	for _, k := range b.env.SSHAuthorizedKeys {
		if !slices.ContainsFunc(keep, func(l string) bool { return sameKey(k, l) }) {
			keep = append(keep, strings.TrimSpace(k))
		}
	}
	want := strings.Join(keep, "\n")
	if want != "" {
		want += "\n"
	}
	owner := strconv.Itoa(acct.UID) + ":" + strconv.Itoa(acct.GID)
	c1, err := b.m.EnsureDir(machine.Dir{Path: dir, Owner: owner, Mode: 0o700})
	if err != nil {
		return false, err
	}
	if c1 != "" {
		b.m.Out.Detail("%s", c1)
	}
	c2, err := b.m.WriteFile(ctx, machine.File{Path: p, Data: []byte(want), Mode: 0o600, Owner: owner})
	return c1 != "" || c2, err
}

// sameKey compares two authorized_keys entries by key type and key, ignoring comments.
func sameKey(a, b string) bool {
	fa, fb := strings.Fields(a), strings.Fields(b)
	return len(fa) >= 2 && len(fb) >= 2 && fa[0] == fb[0] && fa[1] == fb[1]
}

// configure applies the services of the stack to the machine: their files (each
// checked by the service's own checker before it replaces a working one) and their
// preparation steps.
func (b *boot) configure(ctx context.Context) (bool, error) {
	facts := hostFacts()
	if b.opt.Facts != nil {
		facts = *b.opt.Facts
	}
	b.sc = services.NewContext(b.m, b.env, facts, b.opt.Now())
	states, err := services.Configure(ctx, b.sc, Stack)
	b.states = states
	changed := b.sc.AnyChanged()
	b.changed = b.changed || changed
	return changed, err
}

// start brings the stack's units up: those running whose configuration changed are
// reloaded or restarted, then all are started in one systemd transaction (in
// parallel, under the units' own ordering), then the services' steps that need their
// units (the database, the ACME certificate) run, and what they changed is taken up.
// Starting services is what every boot does, so it does not count as a change.
func (b *boot) start(ctx context.Context) (bool, error) {
	sd := b.m.Systemd
	if err := b.refresh(ctx); err != nil {
		return false, err
	}
	units := services.Units(b.env, Stack)
	if err := sd.Start(ctx, units...); err != nil {
		return false, err
	}
	if err := services.Finish(ctx, b.sc, Stack); err != nil {
		return false, err
	}
	b.states = b.sc.WithNotes(b.states)
	if err := b.refresh(ctx); err != nil {
		return false, err
	}
	changed := b.sc.AnyChanged()
	b.changed = b.changed || changed
	return changed, nil
}

// refresh reloads or restarts the running units whose files changed (and those of
// force), each after its service's check of what they would load.
func (b *boot) refresh(ctx context.Context, force ...services.Service) error {
	sd := b.m.Systemd
	if b.sc.ChangedUnder("/etc/systemd/system/") {
		// A unit file a service writes (the update timer) is read only after this.
		if err := sd.DaemonReload(ctx); err != nil {
			return err
		}
	}
	changes := services.Refresh(b.sc, Stack, force...)
	defer b.sc.Refreshed()
	for _, ch := range changes {
		active, err := sd.Active(ctx, ch.Units)
		if err != nil {
			return err
		}
		if len(active) == 0 {
			continue // not running (yet): starting them reads the new files
		}
		name := ch.Service.Spec(b.env).Name
		if lc, ok := ch.Service.(services.LiveChecker); ok {
			if err := lc.CheckLive(ctx, b.sc); err != nil {
				return fmt.Errorf("service %s: %s not reloaded, what it would load fails its check: %w", name, strings.Join(active, " "), err)
			}
		}
		if ch.Restart {
			b.m.Out.Detail("restarting %s: its configuration changed", strings.Join(active, " "))
			err = sd.Restart(ctx, active...)
		} else {
			b.m.Out.Detail("reloading %s: its configuration changed", strings.Join(active, " "))
			err = sd.ReloadOrRestart(ctx, active...)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// verify waits until every health check of the stack passes, or the deadline.
func (b *boot) verify(ctx context.Context) (bool, error) {
	var checks []services.Check
	for _, s := range Stack {
		checks = append(checks, s.Spec(b.env).Checks...)
	}
	if !b.m.Live() {
		for _, c := range checks {
			b.m.Out.Detail("would check %s (not the running system)", c.Name)
		}
		return false, nil
	}
	ctx, cancel := context.WithTimeout(ctx, verifyDeadline)
	defer cancel()
	for _, c := range checks {
		for {
			err := probe(ctx, c.HTTP, c.TCP)
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				if errors.Is(ctx.Err(), context.Canceled) {
					return false, ctx.Err()
				}
				return false, fmt.Errorf("health check %s did not pass within %s: %v", c.Name, verifyDeadline, err)
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	return false, nil
}

// app deploys the application: the build that ran last, without the network, when
// the env still names it; else fetch, build, migrate behind a dump, start, and fall
// back to the previous build on failure. With no build at all the appliance stands
// by and says why.
// Then come the services that wait for ECS (pdf-as).
func (b *boot) app(ctx context.Context) (bool, error) {
	changed := false
	if b.m.Live() {
		out, err := b.lifecycle().Boot(ctx)
		if err := b.appOutcome(out, err); err != nil {
			return out.Changed, err
		}
		changed = out.Changed
	} else {
		b.m.Out.Detail("would deploy ECS from %s (not the running system)", app.Redact(b.env.ECS.Git.Source))
	}
	later, err := services.AfterApp(ctx, b.sc, Stack)
	b.states = b.sc.WithNotes(b.states)
	return changed || later, err
}

// appOutcome keeps what a lifecycle step left for the status; no build to run is a
// standby, not a failure.
func (b *boot) appOutcome(out app.Outcome, err error) error {
	if errors.Is(err, app.ErrNoBuild) {
		b.appStandby = err.Error()
		b.run.Error = b.appStandby
		return nil
	}
	if err != nil {
		return err
	}
	b.appStatus = &status.App{Serving: out.Serving, Notice: out.Notice}
	return nil
}

func (b *boot) lifecycle() *app.Lifecycle {
	return &app.Lifecycle{M: b.m, Env: b.env, Store: b.store, User: "app",
		Progress: func(msg string) { b.publish(status.Starting, "Appliance Startup", msg, "app") }}
}

// probe is one attempt of a health check: any HTTP answer (nginx answers 503 while
// the status page is up), or a TCP connection.
func probe(ctx context.Context, url, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if url != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		return resp.Body.Close()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}
