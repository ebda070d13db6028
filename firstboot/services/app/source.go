package app

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
)

// gitEnv keeps git from asking for credentials on a terminal nobody watches.
var gitEnv = []string{"GIT_TERMINAL_PROMPT=0", "HOME=/app"}

// git runs git as the app's user in dir.
func (l *Lifecycle) git(ctx context.Context, dir string, args ...string) (string, error) {
	out, err := l.M.Run(ctx, machine.Command{Name: "git", Args: append([]string{"-C", l.M.Path(dir)}, args...), User: l.User, Env: gitEnv})
	return strings.TrimSpace(string(out)), err
}

// Redact is a repository URL without the credentials it may carry.
func Redact(source string) string {
	u, err := url.Parse(source)
	if err != nil || u.User == nil {
		return source
	}
	u.User = url.User("***")
	return u.String()
}

// scrubURL keeps a git error from quoting credentials embedded in the URL.
func scrubURL(err error, source string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if r := Redact(source); r != source {
		msg = strings.ReplaceAll(msg, source, r)
		if u, perr := url.Parse(source); perr == nil && u.User != nil {
			msg = strings.ReplaceAll(msg, u.User.String(), "***")
		}
	}
	return errors.New(msg)
}

// Fetch brings dir to the target of g (its commit id, else the head of its branch)
// from g.Source, cloning it when dir has no clone of that source, and returns the
// commit checked out.
func (l *Lifecycle) Fetch(ctx context.Context, dir string, g env.Git) (string, error) {
	commit, err := l.fetch(ctx, dir, g)
	return commit, scrubURL(err, g.Source)
}

func (l *Lifecycle) fetch(ctx context.Context, dir string, g env.Git) (string, error) {
	m := l.M
	p := m.Path(dir)
	remote, err := l.git(ctx, dir, "config", "--get", "remote.origin.url")
	if err != nil || remote != g.Source {
		// A changed source is a fresh clone: nothing of the old one is trusted.
		if err := os.RemoveAll(p); err != nil {
			return "", err
		}
		if _, err := m.EnsureDir(machine.Dir{Path: dir, Owner: l.User}); err != nil {
			return "", err
		}
		if _, err := l.git(ctx, dir, "init", "-q"); err != nil {
			return "", err
		}
		if _, err := l.git(ctx, dir, "remote", "add", "origin", g.Source); err != nil {
			return "", err
		}
		m.Out.Detail("cloning %s into %s", Redact(g.Source), dir)
	}
	if _, err := l.git(ctx, dir, "fetch", "-q", "--prune", "origin", "+refs/heads/*:refs/remotes/origin/*"); err != nil {
		return "", fmt.Errorf("fetching %s: %w", Redact(g.Source), err)
	}
	target := "origin/" + g.Branch
	if g.CommitID != "" {
		target = g.CommitID
	}
	commit, err := l.git(ctx, dir, "rev-parse", "--verify", "-q", target+"^{commit}")
	if err != nil || commit == "" {
		return "", fmt.Errorf("%s has no commit %s", Redact(g.Source), target)
	}
	if _, err := l.git(ctx, dir, "checkout", "-q", "-f", "--detach", commit); err != nil {
		return "", err
	}
	if _, err := l.git(ctx, dir, "clean", "-q", "-f", "-d", "-x"); err != nil {
		return "", err
	}
	return commit, nil
}

// copyManual copies the docs checkout's German user manual into the source's
// static/help, where ECS serves it (as the original did).
func (l *Lifecycle) copyManual(ctx context.Context) error {
	m := l.M
	src := filepath.Join(DocsDir, "user-manual-de")
	if _, err := os.Stat(m.Path(src)); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s has no user-manual-de", DocsDir)
	}
	dst := filepath.Join(SourceDir, "static", "help")
	if err := os.RemoveAll(m.Path(dst)); err != nil {
		return err
	}
	if _, err := m.EnsureDir(machine.Dir{Path: filepath.Dir(dst), Owner: l.User}); err != nil {
		return err
	}
	_, err := m.Run(ctx, machine.Command{Name: "cp", Args: []string{"-a", m.Path(src), m.Path(dst)}, User: l.User})
	return err
}
