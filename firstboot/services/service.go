// Package services is the frame every part of the stack the agent configures fits
// in. A service is one package under firstboot/services/ that declares what it reads
// from env.yml, the files it renders, the units it owns and how they take a change,
// its health checks and the directories it keeps its state in; Configure applies a
// list of them in order, and the agent's start, verify and app phases act on what they
// declare. Adding a service means adding its package and one line to the agent's list.
package services

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
)

// Service is one part of the stack.
type Service interface {
	// Spec is what the service declares for an env (units an env does not use are
	// not declared).
	Spec(e *env.Env) Spec
	// Files renders the files the service owns for c's env and facts. It only renders:
	// no side effects, so golden tests call it directly.
	Files(c *Context) ([]machine.File, error)
}

// Preparer is a service with steps beyond its files that its files refer to (keys,
// certificates, packages), run before its files are written.
type Preparer interface {
	Prepare(ctx context.Context, c *Context) error
}

// Finisher is a service with steps that need its running units (a database to create),
// run by the start phase once the units are up.
type Finisher interface {
	Finish(ctx context.Context, c *Context) error
}

// Deferred is a service whose steps wait until the boot has deployed ECS: pdf-as,
// whose JVM starting beside ECS's build or start would slow ECS's way up on a small
// machine. changed says whether the step changed anything.
type Deferred interface {
	AfterApp(ctx context.Context, c *Context) (changed bool, err error)
}

// Spec is what a service declares.
type Spec struct {
	Name  string
	Reads []string // the env.yml keys it acts on
	Units []string // the units it owns, started by the start phase
	// Later are units its own lifecycle starts (the application, once it has an
	// image); the start phase only reloads or restarts them when they run.
	Later []string
	// Reload is how its running units take a change of its files or of Watch.
	Reload Reload
	// Watch are files of other services its units read (the certificate, say).
	Watch  []string
	Checks []Check
	// Dirs are the directories it keeps its state in, made by the storage phase, and
	// Relocations the state directories storage moves onto /data or /volatile.
	Dirs        []machine.Dir
	Relocations []Relocation
}

// Reload says how a running unit takes a change of its configuration.
type Reload int

const (
	ReloadOrRestart Reload = iota // reload if the unit can, else restart
	Restart                       // always restart (the daemon reads its files only at start)
)

// Check is a health check: an HTTP GET that gets any answer (nginx answers 503 while
// the status page is up), or a TCP connect.
type Check struct {
	Name string
	HTTP string
	TCP  string
}

// Relocation moves a service's state directory from the root filesystem onto a volume
// and leaves a symlink behind; Units are stopped around the move.
type Relocation struct {
	Source, Target string
	Units          []string
}

// Facts are what the machine is, as services need it.
type Facts struct {
	MemoryMB int
	Cores    int
}

// Context is what a service works with: the machine, the active env, the machine's
// facts, and the record of what this run changed.
type Context struct {
	M     *machine.Machine
	Env   *env.Env
	Facts Facts
	Now   time.Time

	service   string              // the service being configured
	changed   map[string][]string // service → paths it changed, since Refreshed
	refreshed bool                // changes before the last Refreshed, or Did
	notes     map[string]string   // service → what it wants the status to show
	// Certificate is the server certificate in use, set by the TLS service.
	Certificate *Certificate
}

// Certificate is the server certificate in use.
type Certificate struct {
	Source   string    `json:"source"` // "env", "acme", "self-signed"
	NotAfter time.Time `json:"not_after"`
	Notice   string    `json:"notice,omitempty"` // a warning, e.g. a failed renewal
}

// NewContext returns a context for one run.
func NewContext(m *machine.Machine, e *env.Env, facts Facts, now time.Time) *Context {
	return &Context{M: m, Env: e, Facts: facts, Now: now, changed: map[string][]string{}, notes: map[string]string{}}
}

// Write writes f through the machine and records a change for the current service.
func (c *Context) Write(ctx context.Context, f machine.File) (bool, error) {
	changed, err := c.M.WriteFile(ctx, f)
	if changed {
		c.changed[c.service] = append(c.changed[c.service], f.Path)
	}
	return changed, err
}

// Did records a change no unit needs to take (a database made, a package
// installed): it counts for the run's outcome only.
func (c *Context) Did() { c.refreshed = true }

// Note sets what the status page shows for the current service.
func (c *Context) Note(msg string) { c.notes[c.service] = msg }

// State is a service's outcome in this run, for the status page.
type State struct {
	Name  string `json:"name"`
	State string `json:"state"` // configured, changed, failed
	Note  string `json:"note,omitempty"`
}

// Configure applies the services in order: each one's Prepare step, then its files
// (checked by the service's own checker before they replace a working file). It stops at
// the first failure, which names the service; the states say how far it got.
func Configure(ctx context.Context, c *Context, stack []Service) ([]State, error) {
	var states []State
	for _, s := range stack {
		spec := s.Spec(c.Env)
		c.service = spec.Name
		err := configureOne(ctx, c, s)
		st := State{Name: spec.Name, State: "configured", Note: c.notes[spec.Name]}
		if len(c.changed[spec.Name]) > 0 {
			st.State = "changed"
		}
		if err != nil {
			st.State, st.Note = "failed", err.Error()
			states = append(states, st)
			return states, fmt.Errorf("service %s: %w", spec.Name, err)
		}
		states = append(states, st)
	}
	c.service = ""
	return states, nil
}

func configureOne(ctx context.Context, c *Context, s Service) error {
	if p, ok := s.(Preparer); ok {
		if err := p.Prepare(ctx, c); err != nil {
			return err
		}
	}
	files, err := s.Files(c)
	if err != nil {
		return err
	}
	for _, f := range files {
		if _, err := c.Write(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

// Finish runs the Finish steps of the services, in order, once their units run.
func Finish(ctx context.Context, c *Context, stack []Service) error {
	for _, s := range stack {
		f, ok := s.(Finisher)
		if !ok {
			continue
		}
		c.service = s.Spec(c.Env).Name
		if err := f.Finish(ctx, c); err != nil {
			return fmt.Errorf("service %s: %w", c.service, err)
		}
	}
	c.service = ""
	return nil
}

// AfterApp runs the deferred steps of the services, in order, once the boot has
// deployed ECS (or stands by).
func AfterApp(ctx context.Context, c *Context, stack []Service) (bool, error) {
	anyChanged := false
	for _, s := range stack {
		d, ok := s.(Deferred)
		if !ok {
			continue
		}
		c.service = s.Spec(c.Env).Name
		changed, err := d.AfterApp(ctx, c)
		if err != nil {
			return anyChanged, fmt.Errorf("service %s: %w", c.service, err)
		}
		anyChanged = anyChanged || changed
	}
	c.service = ""
	return anyChanged, nil
}

// WithNotes returns states with the notes the services set after Configure (in their
// Finish and AfterApp steps).
func (c *Context) WithNotes(states []State) []State {
	for i := range states {
		if n := c.notes[states[i].Name]; n != "" && states[i].State != "failed" {
			states[i].Note = n
		}
	}
	return states
}

// AnyChanged reports whether the run changed anything.
func (c *Context) AnyChanged() bool {
	if c.refreshed {
		return true
	}
	for _, p := range c.changed {
		if len(p) > 0 {
			return true
		}
	}
	return false
}

// ChangedUnder reports whether the run changed a file under dir since Refreshed.
func (c *Context) ChangedUnder(dir string) bool {
	for _, paths := range c.changed {
		for _, p := range paths {
			if strings.HasPrefix(p, dir) {
				return true
			}
		}
	}
	return false
}

// Refreshed forgets the changes Refresh has reported, once the units have taken
// them; AnyChanged still counts them.
func (c *Context) Refreshed() {
	c.refreshed = c.refreshed || c.AnyChanged()
	c.changed = map[string][]string{}
}

// Units are the units of the stack for an env, in the order of the services.
func Units(e *env.Env, stack []Service) []string {
	var units []string
	for _, s := range stack {
		units = append(units, s.Spec(e).Units...)
	}
	return units
}

// LiveChecker is a service that can check the configuration its running units would
// load, before they are reloaded or restarted: files of other services it reads (a
// CA, a certificate) may have changed underneath.
type LiveChecker interface {
	CheckLive(ctx context.Context, c *Context) error
}

// Change is a service whose running units must take a change.
type Change struct {
	Service Service
	Units   []string // its service units (a path or timer unit keeps running)
	Restart bool     // else reload-or-restart
}

// Refresh returns the services whose files, or files they watch, this run changed,
// and those in force whatever changed.
func Refresh(c *Context, stack []Service, force ...Service) []Change {
	var all []string
	for _, p := range c.changed {
		all = append(all, p...)
	}
	var out []Change
	for _, s := range stack {
		spec := s.Spec(c.Env)
		hit := len(c.changed[spec.Name]) > 0 || slices.Contains(force, s)
		for _, w := range spec.Watch {
			hit = hit || slices.Contains(all, w)
		}
		if !hit {
			continue
		}
		ch := Change{Service: s, Restart: spec.Reload == Restart}
		for _, u := range append(spec.Units, spec.Later...) {
			if strings.HasSuffix(u, ".service") {
				ch.Units = append(ch.Units, u)
			}
		}
		out = append(out, ch)
	}
	return out
}
