// Package servicetest runs a service's renders in tests: a machine tree with the
// template env, golden files for what it renders, and the service's own checker on
// every render.
package servicetest

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/agent/agenttest"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// Now is the time of every test context.
var Now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// Context is a services.Context on a new machine tree whose env is the template env
// changed by edit.
func Context(t testing.TB, edit func(string) string, facts services.Facts) *services.Context {
	t.Helper()
	root := agenttest.NewRoot(t, edit)
	data, err := os.ReadFile(filepath.Join(root, "app/env.yml"))
	if err != nil {
		t.Fatal(err)
	}
	e, _, err := env.Parse("env.yml", data)
	if err != nil {
		t.Fatal(err)
	}
	m, err := machine.New(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	return services.NewContext(m, e, facts, Now)
}

// Golden compares each file's content with testdata/<variant>/<base name>.golden
// (rewritten with -update).
func Golden(t testing.TB, variant string, files []machine.File) {
	t.Helper()
	for _, f := range files {
		p := filepath.Join("testdata", variant, filepath.Base(f.Path)+".golden")
		if *update {
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, f.Data, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("%v (run go test -update to write it)", err)
		}
		if string(want) != string(f.Data) {
			t.Errorf("%s differs from %s:\n%s", f.Path, p, f.Data)
		}
	}
}

// Checked writes the files in order into the tree, as the configure phase would:
// each one's checker must accept it.
func Checked(t testing.TB, m *machine.Machine, files []machine.File) {
	t.Helper()
	for _, f := range files {
		if _, err := m.WriteFile(context.Background(), f); err != nil {
			t.Errorf("%v", err)
		}
	}
}

// Prepare runs the service's Prepare step, if it has one.
func Prepare(t testing.TB, c *services.Context, s services.Service) {
	t.Helper()
	if p, ok := s.(services.Preparer); ok {
		if err := p.Prepare(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
}
