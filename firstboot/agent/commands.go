package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/app"
	"github.com/ethikkom/ecs-appliance/firstboot/services/tls"
	"github.com/ethikkom/ecs-appliance/firstboot/status"
)

// Reconfigure applies the active env to the named services (all when none) on a
// machine that has booted, and reloads or restarts what changed — with reload, the
// named services' units in any case, after their check: what the admin runs after
// editing a service's inputs, and what appliance-ecs-ca.service runs when ECS renews
// its CA or CRL.
func Reconfigure(ctx context.Context, opt Options, names []string, reload bool) error {
	stack, err := pick(names)
	if err != nil {
		return err
	}
	b, err := resume(opt)
	if err != nil {
		return err
	}
	states, err := services.Configure(ctx, b.sc, stack)
	b.update(states)
	if err != nil {
		return err
	}
	if reload {
		return b.refresh(ctx, stack...)
	}
	return b.refresh(ctx)
}

// Renew renews the ACME certificate when it is due (appliance-renew.timer) and
// reloads nginx and restarts postfix and stunnel on a new one. A failed renewal keeps
// a certificate that is still valid; the status says what happened.
func Renew(ctx context.Context, opt Options) error {
	b, err := resume(opt)
	if err != nil {
		return err
	}
	if err := services.Finish(ctx, b.sc, []services.Service{tls.Service{}}); err != nil {
		return err
	}
	b.update(nil)
	return b.refresh(ctx)
}

// UpdateApp fetches the target ecs.git names and deploys it when it is not the build
// served (the update timer's app step, or the admin): build, dump and migrate, start,
// with the fallback and rollback of a boot. The status says what it left.
func UpdateApp(ctx context.Context, opt Options) error {
	b, err := liveBoot(opt)
	if err != nil {
		return err
	}
	if b.store, err = OpenState(ctx, b.root); err != nil {
		return err
	}
	defer b.closeStore()
	out, err := b.lifecycle().Update(ctx)
	if err := b.appOutcome(out, err); err != nil {
		return err
	}
	if err := b.publishApp(); err != nil {
		return err
	}
	if b.appStandby != "" {
		return errors.New(b.appStandby)
	}
	_, _, msg, _ := b.appState()
	b.m.Out.Line("app: %s", msg)
	return nil
}

// publishApp puts what the app's lifecycle left on the status page, keeping the rest.
func (b *boot) publishApp() error {
	s, err := status.Read(b.root)
	if err != nil {
		s = status.Status{}
	}
	s.State, s.Title, s.Message, s.Phase = b.appState()
	s.App, s.Time = b.appStatus, b.opt.Now()
	return status.Publish(b.root, s)
}

// CreateUser makes an internal user of ECS (group EC-Office) and prints its
// passphrase once on opt.Out.
func CreateUser(ctx context.Context, opt Options, email, first, last, gender string) error {
	l, err := liveLifecycle(opt)
	if err != nil {
		return err
	}
	fmt.Fprintf(opt.Out, "passphrase of %s (shown once): ", email)
	return l.CreateUser(ctx, opt.Out, email, first, last, gender)
}

// ClientCert issues a client certificate for a user of ECS, prints its passphrase
// once on opt.Out and says where the PKCS#12 file is.
func ClientCert(ctx context.Context, opt Options, email, name string) error {
	l, err := liveLifecycle(opt)
	if err != nil {
		return err
	}
	fmt.Fprintf(opt.Out, "passphrase of the certificate (shown once): ")
	file, err := l.ClientCert(ctx, opt.Out, email, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(opt.Out, "the certificate for %s is %s (import it into the user's browser, then delete it)\n", email, file)
	return nil
}

func liveLifecycle(opt Options) (*app.Lifecycle, error) {
	b, err := liveBoot(opt)
	if err != nil {
		return nil, err
	}
	return b.lifecycle(), nil
}

// liveBoot is resume on the running system, where the application runs.
func liveBoot(opt Options) (*boot, error) {
	b, err := resume(opt)
	if err != nil {
		return nil, err
	}
	if !b.m.Live() {
		return nil, errors.New("the application runs only on the running system")
	}
	return b, nil
}

// resume is a run on a booted machine: its active env, its facts.
func resume(opt Options) (*boot, error) {
	if opt.Out == nil {
		opt.Out = io.Discard
	}
	m, err := machine.New(opt.Root, opt.Out)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(m.Path("/" + FailedPath)); err == nil {
		return nil, ErrFailed
	}
	data, err := os.ReadFile(m.Path("/" + ActiveEnvPath))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errors.New("no active env (/" + ActiveEnvPath + "): the appliance has not booted, or is in standby")
	}
	if err != nil {
		return nil, err
	}
	e, _, err := env.Parse("/"+ActiveEnvPath, data)
	if err != nil {
		return nil, err
	}
	facts := hostFacts()
	if opt.Facts != nil {
		facts = *opt.Facts
	}
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	b := &boot{opt: opt, root: m.Root(), m: m, env: e}
	b.opt.Now = now
	b.sc = services.NewContext(m, e, facts, now())
	return b, nil
}

// update puts the services' new states and the certificate into the published status.
func (b *boot) update(states []services.State) {
	s, err := status.Read(b.root)
	if err != nil {
		return // nothing published since boot: the next boot publishes all
	}
	for _, st := range states {
		i := slices.IndexFunc(s.Services, func(o services.State) bool { return o.Name == st.Name })
		if i < 0 {
			s.Services = append(s.Services, st)
		} else {
			s.Services[i] = st
		}
	}
	if b.sc.Certificate != nil {
		s.Certificate = b.sc.Certificate
	}
	if err := status.Publish(b.root, s); err != nil {
		b.m.Out.Line("cannot publish status: %v", err)
	}
}

// ServiceNames are the names of the stack's services.
func ServiceNames() []string {
	var names []string
	for _, s := range Stack {
		names = append(names, s.Spec(&env.Env{}).Name)
	}
	return names
}

// pick returns the services of the stack with the given names, in stack order.
func pick(names []string) ([]services.Service, error) {
	if len(names) == 0 {
		return Stack, nil
	}
	known := ServiceNames()
	var out []services.Service
	for i, s := range Stack {
		if slices.Contains(names, known[i]) {
			out = append(out, s)
		}
	}
	for _, n := range names {
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("unknown service %q (services: %s)", n, strings.Join(known, ", "))
		}
	}
	return out, nil
}
