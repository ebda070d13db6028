// Command appliance-agent turns a VM into the ECS appliance its env.yml describes. It
// runs at every boot (appliance-agent.service); admins use it to see why a boot failed
// and to clear the failed state.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/ethikkom/ecs-appliance/firstboot/agent"
	"github.com/ethikkom/ecs-appliance/firstboot/install"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services/app"
	"github.com/ethikkom/ecs-appliance/firstboot/status"
)

const usage = `appliance-agent — turns this machine into the ECS appliance its env.yml describes

Usage:
  appliance-agent boot [--until PHASE]   the whole run (what appliance-agent.service does)
  appliance-agent discover               which env.yml source would be used, and why; changes nothing
  appliance-agent status                 what the appliance is doing (also /run/appliance/status.json)
  appliance-agent configure [--reload] [SERVICE...]
                                         apply the active env to these services again (all if
                                         none) and reload what changed (--reload: their units in
                                         any case, after checking what they would load);
                                         services: %s
  appliance-agent renew                  renew the ACME certificate if due (appliance-renew.timer)
  appliance-agent update                 what appliance-update.timer runs (appliance.update.*):
                                         Debian's updates (unattended-upgrades), then app update,
                                         then renew, then a reboot if a package asks for one;
                                         honours /app/etc/flags/force.update.*
  appliance-agent backup                 what appliance-backup.timer runs (daily, 22:30): dump the
                                         database, then duplicity of /data/ecs-storage-vault and
                                         /data/ecs-pgdump to appliance.backup.url, encrypted to
                                         appliance.backup.encrypt; two full chains are kept
  appliance-agent restore --yes-i-am-sure [--only-restore]
                                         fill an appliance whose vault and dump directory are
                                         empty from the newest backup (also one of the original
                                         appliance), load the database from its dump (a database
                                         that is there is kept, renamed) and start ECS on it;
                                         --only-restore: the files only
  appliance-agent app status             the ECS build served, built, migrated, failed, rolled back
  appliance-agent app update             fetch ecs.git's target; if new: build, dump the database,
                                         migrate, start; on failure serve the previous build again
                                         (and restore the dump if the migration failed)
  appliance-agent app create-user EMAIL FIRST LAST f|m
                                         make an internal user of ECS (group EC-Office); prints
                                         the passphrase once
  appliance-agent app client-cert EMAIL NAME
                                         issue a client certificate (PKCS#12) for a user;
                                         prints its passphrase once and where the file is
  appliance-agent reset-failed           clear the failed state after fixing its cause
  appliance-agent report-failure UNIT    send a unit's failure to appliance.sentry.dsn (what
                                         appliance-failed@.service runs as the appliance
                                         units' OnFailure); without a DSN it only says so
  appliance-agent alert-relay            Alertmanager's webhook on 127.0.0.1:9095: sends each
                                         alert to appliance.sentry.dsn (what
                                         appliance-alert-relay.service runs with
                                         appliance.metric.server)
  appliance-agent state                  the recorded tags and recent runs
  appliance-agent install MANIFEST       the image build's step (provisioner ecs-appliance):
                                         put the recipe's directories, files and links in
                                         place as MANIFEST lists them, changing only what differs

A boot runs these phases: discover (find env.yml: $ENV_YML, /app/env.yml, a cidata or
config-2 disk, cloud metadata; see /etc/appliance/agent.yml) → activate (validate it,
write /run/active-env.yml) → storage (/data and /volatile) → state (the record of
runs) → prepare (hostname, SSH keys) → configure (each service's files, checked by the
service's own checker before they replace a working one: TLS certificate, nginx,
PostgreSQL, postfix + opendkim, stunnel, redis + memcached, ECS's compose project,
pdf-as, backup and update timers, Prometheus and its exporters, extra files and
packages) → start (the units, in parallel; database and ACME certificate once they
run) → verify (health checks)
→ app (ECS: the build that ran last, without the network, while env.yml names the
same source; else fetch, build, dump + migrate, start; with no build to run, standby;
then pdf-as, its image built when new, so that its JVM never slows ECS's way up).
A second boot with nothing new says "unchanged". If a phase fails, the status page
says which and why, /run/appliance-failed keeps the stack from starting, and after
fixing the cause "appliance-agent reset-failed" (or a reboot) clears it.

Options (every command):
  --root DIR      work on the machine tree under DIR instead of / (tests, images): files
                  are written there, units only named ("would start …"), nothing else
                  of the host is touched
  --device PATH   search and set up only this block device (repeatable); default: all
Exit status: 0 success or standby, 1 failure, 2 usage error.
`

func helpText() string { return fmt.Sprintf(usage, strings.Join(agent.ServiceNames(), ", ")) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// appArgs are the verbs of "app" and how many arguments each takes.
var appArgs = map[string]int{"status": 0, "update": 0, "create-user": 4, "client-cert": 2}

type devices []string

func (d *devices) String() string     { return strings.Join(*d, ",") }
func (d *devices) Set(v string) error { *d = append(*d, v); return nil }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, helpText())
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd := args[0]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	root := fs.String("root", "/", "")
	var devs devices
	fs.Var(&devs, "device", "")
	until := fs.String("until", "", "")
	reload := fs.Bool("reload", false, "")
	sure := fs.Bool("yes-i-am-sure", false, "")
	onlyRestore := fs.Bool("only-restore", false, "")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, helpText())
			return 0
		}
		fmt.Fprintf(stderr, "appliance-agent %s: %v\n\n%s", cmd, err, helpText())
		return 2
	}
	if _, ok := appArgs[fs.Arg(0)]; cmd == "app" && !ok {
		fmt.Fprintf(stderr, "appliance-agent app: unknown verb %q (status, update, create-user, client-cert)\n", fs.Arg(0))
		return 2
	}
	if fs.NArg() > 0 && cmd != "configure" && cmd != "install" && cmd != "app" && cmd != "report-failure" || (cmd == "install" || cmd == "report-failure") && fs.NArg() != 1 || cmd == "app" && fs.NArg() != appArgs[fs.Arg(0)]+1 || *until != "" && cmd != "boot" || *reload && cmd != "configure" || (*sure || *onlyRestore) && cmd != "restore" {
		fmt.Fprintf(stderr, "appliance-agent %s: unexpected arguments\n\n%s", cmd, helpText())
		return 2
	}
	if *until != "" && !slices.Contains(agent.Phases, *until) {
		fmt.Fprintf(stderr, "appliance-agent boot: unknown phase %q (phases: %s)\n", *until, strings.Join(agent.Phases, ", "))
		return 2
	}
	var err error
	switch cmd {
	case "boot":
		err = agent.Boot(ctx, agent.Options{Root: *root, Devices: devs, EnvYML: os.Getenv("ENV_YML"), Until: *until, Out: stdout})
	case "configure":
		err = agent.Reconfigure(ctx, agent.Options{Root: *root, Out: stdout}, fs.Args(), *reload)
	case "renew":
		err = agent.Renew(ctx, agent.Options{Root: *root, Out: stdout})
	case "update":
		err = agent.Update(ctx, agent.Options{Root: *root, Out: stdout})
	case "backup":
		err = agent.Backup(ctx, agent.Options{Root: *root, Out: stdout})
	case "restore":
		if !*sure {
			fmt.Fprintln(stderr, "appliance-agent restore: it replaces the vault, the dumps and the database's contents; say --yes-i-am-sure")
			return 2
		}
		err = agent.Restore(ctx, agent.Options{Root: *root, Out: stdout}, *onlyRestore)
	case "discover":
		err = discover(ctx, *root, devs, stdout)
	case "status":
		err = printStatus(*root, stdout)
	case "reset-failed":
		if err = agent.ResetFailed(*root); err == nil {
			fmt.Fprintln(stdout, "failed state cleared; start the appliance again with: systemctl restart appliance-agent")
		}
	case "state":
		err = printState(ctx, *root, stdout)
	case "alert-relay":
		err = agent.AlertRelay(ctx, agent.Options{Root: *root, Out: stdout})
	case "report-failure":
		err = agent.ReportFailure(ctx, agent.Options{Root: *root, Out: stdout}, fs.Arg(0))
	case "app":
		opt, a := agent.Options{Root: *root, Out: stdout}, fs.Args()
		switch a[0] {
		case "update":
			err = agent.UpdateApp(ctx, opt)
		case "status":
			err = printApp(ctx, *root, stdout)
		case "create-user":
			err = agent.CreateUser(ctx, opt, a[1], a[2], a[3], a[4])
		case "client-cert":
			err = agent.ClientCert(ctx, opt, a[1], a[2])
		}
	case "install":
		err = installManifest(ctx, *root, fs.Arg(0), stdout)
	default:
		fmt.Fprintf(stderr, "appliance-agent: unknown command %q\n\n%s", cmd, helpText())
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "appliance-agent %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

func installManifest(ctx context.Context, root, manifest string, out io.Writer) error {
	mf, err := install.Read(manifest)
	if err != nil {
		return err
	}
	m, err := machine.New(root, out)
	if err != nil {
		return err
	}
	n, err := install.Apply(ctx, m, mf)
	if err != nil {
		return err
	}
	if n == 0 {
		m.Out.Line("install: unchanged")
	} else {
		m.Out.Line("install: %d changes", n)
	}
	return nil
}

func discover(ctx context.Context, root string, devs []string, out io.Writer) error {
	res, err := agent.Discover(ctx, root, devs, os.Getenv("ENV_YML"))
	if res != nil {
		for _, r := range res.Reports {
			fmt.Fprintf(out, "%-11s %s", r.Source, r.Status)
			if r.From != "" {
				fmt.Fprintf(out, " %s", r.From)
			}
			if r.Reason != "" {
				fmt.Fprintf(out, ": %s", r.Reason)
			}
			fmt.Fprintln(out)
		}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "would use: %s\n", res)
	return nil
}

func printStatus(root string, out io.Writer) error {
	s, err := status.Read(root)
	if errors.Is(err, os.ErrNotExist) {
		return errors.New("no status yet: the agent has not run since boot")
	}
	if err != nil {
		return err
	}
	fmt.Fprint(out, s)
	return nil
}

func printApp(ctx context.Context, root string, out io.Writer) error {
	if s, err := status.Read(root); err == nil {
		fmt.Fprintf(out, "%s: %s\n", s.State, s.Message)
	}
	st, err := agent.OpenState(ctx, root)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, name := range []string{app.TagRunning, app.TagImage, app.TagSource, app.TagBuild, app.TagMigration, app.TagFailed, app.TagRollback} {
		if v, ok, err := st.Tag(ctx, name); err != nil {
			return err
		} else if ok {
			fmt.Fprintf(out, "  %-24s %s\n", name, v)
		}
	}
	return nil
}

func printState(ctx context.Context, root string, out io.Writer) error {
	// The boot run has ended and closed its node, so open our own.
	s, err := agent.OpenState(ctx, root)
	if err != nil {
		return err
	}
	defer s.Close()
	tags, err := s.Tags(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "tags:")
	for _, t := range tags {
		fmt.Fprintf(out, "  %-24s %s\n", t.Name, t.Value)
	}
	runs, err := s.Runs(ctx, 10)
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "runs (newest first):")
	for _, r := range runs {
		fmt.Fprintf(out, "  #%d %s %s", r.ID, r.Started.Format(time.RFC3339), r.Result)
		if r.Error != "" {
			fmt.Fprintf(out, ": %s", r.Error)
		}
		fmt.Fprintln(out)
		for _, p := range r.Phases {
			fmt.Fprintf(out, "      %-8s %-9s %s\n", p.Name, p.Result, p.Ended.Sub(p.Started).Round(time.Millisecond))
		}
	}
	return nil
}
