package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services/docker"
	"github.com/ethikkom/ecs-appliance/firstboot/state"
)

// The lifecycle's tags in the state store.
const (
	TagRunning   = state.TagLastRunningECS
	TagBuild     = state.TagLastBuildECS
	TagMigration = state.TagLastMigrationECS
	TagImage     = state.TagLastRunningECSImage
	TagFailed    = state.TagLastFailedECS
	TagRollback  = state.TagLastRollbackECS
	TagSource    = state.TagECSSource
)

// healthWithin is how long a started stack has to answer.
const healthWithin = 10 * time.Minute

// Store is the part of the agent's state store the lifecycle records in.
type Store interface {
	Tag(ctx context.Context, name string) (string, bool, error)
	SetTag(ctx context.Context, name, value string) error
	DeleteTag(ctx context.Context, name string) error
}

// Lifecycle moves the application from build to build.
type Lifecycle struct {
	M     *machine.Machine
	Env   *env.Env
	Store Store
	User  string // the app's user for git ("app")
	// Progress tells the status page what is happening (a build takes minutes).
	Progress func(msg string)
}

// Outcome is what a lifecycle step left running.
type Outcome struct {
	Serving string // the commit served
	Changed bool   // a new build was started
	Notice  string // what the admin must know: a failed build or a rollback
}

// ErrNoBuild is a failure with no earlier build to fall back on: the appliance
// stands by.
var ErrNoBuild = errors.New("no build of ECS to run")

// LockPath keeps two lifecycle steps (a boot and an update) from running at once.
const LockPath = "/run/appliance/app.lock"

// locked runs step holding LockPath, or says that another step runs.
func (l *Lifecycle) locked(step func() (Outcome, error)) (Outcome, error) {
	p := l.M.Path(LockPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return Outcome{}, err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return Outcome{}, err
	}
	defer f.Close() // releases the lock
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return Outcome{}, errors.New("another deployment of ECS runs (a boot or app update); try again when it has ended")
	}
	return step()
}

// Boot starts the build that ran last when the env still names it, without the
// network; otherwise it fetches, builds, migrates and starts the target (Update).
func (l *Lifecycle) Boot(ctx context.Context) (Outcome, error) {
	return l.locked(func() (Outcome, error) { return l.boot(ctx) })
}

// Update fetches the target commit and deploys it when it is not the one served.
func (l *Lifecycle) Update(ctx context.Context) (Outcome, error) {
	return l.locked(func() (Outcome, error) { return l.update(ctx) })
}

func (l *Lifecycle) boot(ctx context.Context) (Outcome, error) {
	g := l.Env.ECS.Git
	last, _, err := l.Store.Tag(ctx, TagRunning)
	if err != nil {
		return Outcome{}, err
	}
	source, _, err := l.Store.Tag(ctx, TagSource)
	if err != nil {
		return Outcome{}, err
	}
	if last != "" && source == sourceKey(g) && (g.CommitID == "" || g.CommitID == last) && l.imageID(ctx, image(last)) != "" {
		l.M.Out.Detail("starting the last build, %s (no fetch: the env names the same source)", short(last))
		return l.serve(ctx, last, "")
	}
	return l.update(ctx)
}

func (l *Lifecycle) update(ctx context.Context) (Outcome, error) {
	g := l.Env.ECS.Git
	last, _, err := l.Store.Tag(ctx, TagRunning)
	if err != nil {
		return Outcome{}, err
	}
	l.progress("Fetching the ECS source from " + Redact(g.Source))
	commit, err := l.Fetch(ctx, SourceDir, g)
	if err != nil {
		return l.fallBack(ctx, last, "", fmt.Errorf("source: %w", err))
	}
	if commit == last && l.imageID(ctx, image(last)) != "" {
		return l.serve(ctx, last, "")
	}
	if d := l.Env.ECS.Docs.Git; d.Source != "" {
		if _, err := l.Fetch(ctx, DocsDir, d); err != nil {
			l.M.Out.Detail("the user manual was not updated: %v", err)
		} else if err := l.copyManual(ctx); err != nil {
			l.M.Out.Detail("the user manual was not copied: %v", err)
		}
	}
	return l.deploy(ctx, commit, last)
}

// deploy builds commit and installs it; any failure returns to the build served
// before.
func (l *Lifecycle) deploy(ctx context.Context, commit, prev string) (Outcome, error) {
	if _, err := os.Stat(l.M.Path(filepath.Join(SourceDir, "Dockerfile"))); err != nil {
		return l.fallBack(ctx, prev, commit, fmt.Errorf("%s has no Dockerfile at its root: not an ECS source", Redact(l.Env.ECS.Git.Source)))
	}
	l.progress("Building ECS " + short(commit))
	if err := docker.LoadArchives(ctx, l.M); err != nil {
		return l.fallBack(ctx, prev, commit, fmt.Errorf("the images baked into the disk image: %w", err))
	}
	l.M.Out.Detail("building %s", image(commit))
	if _, err := l.docker(ctx, "build", "-q", "--label", "org.ecs-appliance.commit="+commit, "-t", image(commit), l.M.Path(SourceDir)); err != nil {
		return l.fallBack(ctx, prev, commit, fmt.Errorf("build of %s failed: %w", short(commit), tail(err)))
	}
	if err := l.Store.SetTag(ctx, TagBuild, commit); err != nil {
		return Outcome{}, err
	}
	return l.install(ctx, commit, prev)
}

// Reinstall starts the build served on a database that was replaced underneath it
// (a restore): the migrations it lacks behind a dump, else bootstrap, then start,
// with the rollback of an update. Without a build there is nothing to start
// (ErrNoBuild).
func (l *Lifecycle) Reinstall(ctx context.Context) (Outcome, error) {
	return l.locked(func() (Outcome, error) {
		last, _, err := l.Store.Tag(ctx, TagRunning)
		if err != nil {
			return Outcome{}, err
		}
		if last == "" || l.imageID(ctx, image(last)) == "" {
			return Outcome{}, ErrNoBuild
		}
		return l.install(ctx, last, last)
	})
}

// install runs the built commit: migrations the database lacks behind a dump, else
// bootstrap, then start; any failure returns to prev.
func (l *Lifecycle) install(ctx context.Context, commit, prev string) (Outcome, error) {
	if err := l.stop(ctx); err != nil {
		return Outcome{}, err
	}
	if err := l.point(ctx, commit); err != nil {
		return Outcome{}, err
	}
	pending, err := l.pendingMigrations(ctx)
	if err != nil {
		return l.fallBack(ctx, prev, commit, fmt.Errorf("asking %s for its migrations: %w", short(commit), tail(err)))
	}
	dump := ""
	if pending > 0 {
		l.progress(fmt.Sprintf("Migrating the database for ECS %s (%d migrations)", short(commit), pending))
		if dump, err = l.Dump(ctx, l.Env.ECS.Database+"-migrate"); err != nil {
			return l.fallBack(ctx, prev, commit, fmt.Errorf("the dump before migrating failed, nothing was migrated: %w", err))
		}
		l.M.Out.Detail("dumped %s to %s; migrating (%d pending)", l.Env.ECS.Database, dump, pending)
		if _, err := l.compose(ctx, "run", "--rm", "--no-deps", "-T", "ecs.web", "migrate"); err != nil {
			return l.rollBack(ctx, prev, commit, dump, fmt.Errorf("migration of %s failed: %w", short(commit), tail(err)))
		}
		if err := l.Store.SetTag(ctx, TagMigration, commit); err != nil {
			return Outcome{}, err
		}
	} else if _, err := l.compose(ctx, "run", "--rm", "--no-deps", "-T", "ecs.web", "run", "./manage.py", "bootstrap"); err != nil {
		return l.fallBack(ctx, prev, commit, fmt.Errorf("bootstrap of %s failed: %w", short(commit), tail(err)))
	}
	out, err := l.serve(ctx, commit, "")
	if err != nil {
		return l.rollBack(ctx, prev, commit, dump, err)
	}
	out.Changed = true
	return out, l.Store.DeleteTag(ctx, TagFailed)
}

// serve points the compose project at commit's image, starts it and waits until it
// answers, then records it as served.
func (l *Lifecycle) serve(ctx context.Context, commit, notice string) (Outcome, error) {
	if err := l.point(ctx, commit); err != nil {
		return Outcome{}, err
	}
	l.progress("Starting ECS " + short(commit))
	if err := l.M.Systemd.Start(ctx, Unit); err != nil {
		return Outcome{}, err
	}
	if err := l.waitHealthy(ctx); err != nil {
		return Outcome{}, err
	}
	for name, value := range map[string]string{TagRunning: commit, TagImage: l.imageID(ctx, image(commit)), TagSource: sourceKey(l.Env.ECS.Git)} {
		if err := l.Store.SetTag(ctx, name, value); err != nil {
			return Outcome{}, err
		}
	}
	l.cleanup(ctx)
	return Outcome{Serving: commit, Notice: notice}, nil
}

// fallBack keeps serving prev after target failed before anything was migrated; with
// no earlier build the failure stands (ErrNoBuild).
func (l *Lifecycle) fallBack(ctx context.Context, prev, target string, cause error) (Outcome, error) {
	if target != "" {
		if err := l.Store.SetTag(ctx, TagFailed, target); err != nil {
			return Outcome{}, err
		}
	}
	if prev == "" || l.imageID(ctx, image(prev)) == "" {
		return Outcome{}, fmt.Errorf("%w: %v", ErrNoBuild, cause)
	}
	l.M.Out.Detail("%v; serving %s again", cause, short(prev))
	return l.serve(ctx, prev, fmt.Sprintf("%v; the appliance serves the previous build, %s.", cause, short(prev)))
}

// rollBack restores the database from the dump taken before the migration (when
// there is one), then falls back to prev, and records the rollback.
func (l *Lifecycle) rollBack(ctx context.Context, prev, target, dump string, cause error) (Outcome, error) {
	if err := l.stop(ctx); err != nil {
		return Outcome{}, err
	}
	if dump != "" {
		kept, err := l.Restore(ctx, dump)
		if err != nil {
			return Outcome{}, fmt.Errorf("%v, and restoring the database from %s failed: %w", cause, dump, err)
		}
		cause = fmt.Errorf("%v; the database was restored from %s (the migrated one is kept as %s)", cause, dump, kept)
	}
	if err := l.Store.SetTag(ctx, TagRollback, target+" -> "+prev); err != nil {
		return Outcome{}, err
	}
	return l.fallBack(ctx, prev, target, cause)
}

// point makes RunningTag name commit's image.
func (l *Lifecycle) point(ctx context.Context, commit string) error {
	_, err := l.docker(ctx, "tag", image(commit), RunningTag)
	return err
}

func (l *Lifecycle) stop(ctx context.Context) error {
	active, err := l.M.Systemd.Active(ctx, []string{Unit})
	if err != nil || len(active) == 0 {
		return err
	}
	return l.M.Systemd.Stop(ctx, Unit)
}

// pendingMigrations asks the app which of its migrations the database lacks
// (showmigrations lists them with "[ ]"; ECS's Django 1.8 has no migrate --check).
func (l *Lifecycle) pendingMigrations(ctx context.Context) (int, error) {
	out, err := l.compose(ctx, "run", "--rm", "--no-deps", "-T", "ecs.web", "run", "./manage.py", "showmigrations")
	if err != nil {
		return 0, err
	}
	return countPending(out), nil
}

func countPending(showmigrations string) int {
	n := 0
	for _, line := range strings.Split(showmigrations, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "[ ]") {
			n++
		}
	}
	return n
}

// waitHealthy waits until the web answers on its port and the worker and smtpd
// containers run (no fixed sleep).
func (l *Lifecycle) waitHealthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, healthWithin)
	defer cancel()
	client := &http.Client{Timeout: 10 * time.Second}
	var last error
	for {
		last = l.healthy(ctx, client)
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("ECS did not come up within %s: %w", healthWithin, last)
			}
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func (l *Lifecycle) healthy(ctx context.Context, client *http.Client) error {
	out, err := l.compose(ctx, "ps", "--format", "json")
	if err != nil {
		return err
	}
	running := runningServices(out)
	for _, s := range []string{"ecs.web", "ecs.worker", "ecs.smtpd"} {
		if !running[s] {
			return fmt.Errorf("container %s is not running", s)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+WebAddress+"/", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("web: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("web answers %s", resp.Status)
	}
	return nil
}

// runningServices reads `docker compose ps --format json`: one object per line
// (compose ≥ 2.21) or one array (older).
func runningServices(out string) map[string]bool {
	type container struct{ Service, State string }
	var all []container
	if err := json.Unmarshal([]byte(out), &all); err != nil {
		for _, line := range strings.Split(out, "\n") {
			var c container
			if json.Unmarshal([]byte(line), &c) == nil {
				all = append(all, c)
			}
		}
	}
	running := map[string]bool{}
	for _, c := range all {
		if c.State == "running" {
			running[c.Service] = true
		}
	}
	return running
}

// cleanup removes stopped containers and dangling images and volumes, as the
// original's appliance-cleanup; a failure only costs space.
func (l *Lifecycle) cleanup(ctx context.Context) {
	for _, what := range []string{"container", "image", "volume"} {
		if _, err := l.docker(ctx, what, "prune", "-f"); err != nil {
			l.M.Out.Detail("cleanup: %v", err)
		}
	}
}

func (l *Lifecycle) docker(ctx context.Context, args ...string) (string, error) {
	out, err := l.M.Run(ctx, machine.Command{Name: "docker", Args: args})
	return strings.TrimSpace(string(out)), err
}

func (l *Lifecycle) compose(ctx context.Context, args ...string) (string, error) {
	return l.docker(ctx, append([]string{"compose", "--project-directory", l.M.Path(ProjectDir), "-f", l.M.Path(ComposeFile)}, args...)...)
}

// imageID is the id of ref, "" when docker has no such image.
func (l *Lifecycle) imageID(ctx context.Context, ref string) string {
	id, err := l.docker(ctx, "image", "inspect", "--format", "{{.Id}}", ref)
	if err != nil {
		return ""
	}
	return id
}

func (l *Lifecycle) progress(msg string) {
	if l.Progress != nil {
		l.Progress(msg)
	}
}

func image(commit string) string { return Repository + ":" + commit }

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

// sourceKey says which target the env names: a change means a fetch at boot.
func sourceKey(g env.Git) string {
	target := g.CommitID
	if target == "" {
		target = "branch " + g.Branch
	}
	return Redact(g.Source) + " " + target
}

// tail keeps the end of a long error (a build's output): what went wrong is there.
func tail(err error) error {
	lines := strings.Split(err.Error(), "\n")
	if len(lines) <= 15 {
		return err
	}
	return errors.New(strings.Join(lines[len(lines)-15:], "\n"))
}
