// Package postgresql is the database of ECS: Debian's PostgreSQL cluster with its data
// on /data, tuned at every boot for the machine's memory and cores, listening on
// loopback and the container bridge, with the database and the app role made when
// missing. An existing database is never dropped or rewritten.
package postgresql

import (
	"bytes"
	"context"
	_ "embed"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"text/template"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/docker"
)

const (
	// HBAPath is the appliance's own client authentication file (hba_file), so the
	// cluster's pg_hba.conf keeps a single writer, pg_createcluster.
	HBAPath = "/etc/postgresql/appliance/pg_hba.conf"
	// DatabaseURLPath is the app's DATABASE_URL, as in the original (0600).
	DatabaseURLPath = "/app/etc/ecs/database_url.env"
	Role            = "app"
	Port            = 5432
)

var (
	//go:embed appliance.conf.tmpl
	confText string
	//go:embed pg_hba.conf.tmpl
	hbaText string

	confTmpl = template.Must(template.New("appliance.conf").Parse(confText))
	hbaTmpl  = template.Must(template.New("pg_hba.conf").Parse(hbaText))
)

// Service is PostgreSQL.
type Service struct{}

// Spec implements services.Service.
func (Service) Spec(*env.Env) services.Spec {
	return services.Spec{
		Name:   "postgresql",
		Reads:  []string{"ecs.database"},
		Units:  []string{"postgresql.service"},
		Reload: services.Restart, // shared_buffers and listen_addresses need a restart
		Checks: []services.Check{{Name: "postgresql", TCP: "127.0.0.1:5432"}},
		Dirs: []machine.Dir{
			{Path: "/data/postgresql", Owner: "postgres"},
			{Path: "/data/etc/ecs", Owner: "app"},
		},
		Relocations: []services.Relocation{
			{Source: "/var/lib/postgresql", Target: "/data/postgresql", Units: []string{"postgresql.service"}},
		},
	}
}

// Tuning is the original's formulas (original-appliance.md §6.9).
type Tuning struct {
	MemoryMB, Cores                                                  int
	MaxConnections, SharedBuffersMB, WorkMemKB, EffectiveCacheSizeMB int
}

// Tune computes the settings for a machine.
func Tune(f services.Facts) Tuning {
	cores := max(f.Cores, 1)
	pgMB := max(512, f.MemoryMB-2560-256*cores)
	shared := pgMB / 4
	return Tuning{
		MemoryMB: f.MemoryMB, Cores: cores,
		MaxConnections:       36 + 8*cores,
		SharedBuffersMB:      shared,
		WorkMemKB:            min(max((pgMB-shared)*1024/96/cores, 4096), 65536),
		EffectiveCacheSizeMB: max(2048, 3*pgMB/4),
	}
}

// Version is the newest PostgreSQL major version installed in the tree.
func Version(m *machine.Machine) (string, error) {
	dirs, _ := filepath.Glob(m.Path("/usr/lib/postgresql/*/bin/postgres"))
	var versions []int
	for _, d := range dirs {
		if v, err := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(d)))); err == nil {
			versions = append(versions, v)
		}
	}
	if len(versions) == 0 {
		return "", fmt.Errorf("no PostgreSQL server in /usr/lib/postgresql")
	}
	return strconv.Itoa(slices.Max(versions)), nil
}

// ConfPath is the appliance's settings file of the cluster.
func ConfPath(version string) string {
	return "/etc/postgresql/" + version + "/main/conf.d/appliance.conf"
}

// Files implements services.Service.
func (Service) Files(c *services.Context) ([]machine.File, error) {
	v, err := Version(c.M)
	if err != nil {
		return nil, err
	}
	t := Tune(c.Facts)
	var conf, hba bytes.Buffer
	if err := confTmpl.Execute(&conf, struct {
		Tuning
		Bridge, HBA string
	}{t, docker.BridgeIP, HBAPath}); err != nil {
		return nil, err
	}
	if err := hbaTmpl.Execute(&hba, struct{ Database, BridgeNet string }{quoteHBA(c.Env.ECS.Database), docker.BridgeNet}); err != nil {
		return nil, err
	}
	return []machine.File{
		{Path: HBAPath, Data: hba.Bytes(), Mode: 0o640, Owner: "postgres"},
		{Path: ConfPath(v), Data: conf.Bytes(), Owner: "postgres", Check: check(v)},
	}, nil
}

// quoteHBA quotes a database name for pg_hba.conf.
func quoteHBA(name string) string {
	return `"` + name + `"`
}

// check has the server read the candidate with `postgres -C` (on an empty data
// directory): an unknown setting or a bad value fails, as it would at start.
func check(version string) func(context.Context, *machine.Machine, string) error {
	return func(ctx context.Context, m *machine.Machine, candidate string) error {
		text, err := os.ReadFile(candidate)
		if err != nil {
			return err
		}
		// Only the candidate: the cluster's own postgresql.conf names paths of the machine.
		dir, remove, err := machine.Scratch(map[string][]byte{"postgresql.conf": text})
		if err != nil {
			return err
		}
		defer remove()
		conf := filepath.Join(dir, "postgresql.conf")
		uid, gid, err := machine.HostAccounts().Resolve("postgres")
		if err != nil {
			return err
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return err
		}
		postgres := "/usr/lib/postgresql/" + version + "/bin/postgres"
		if _, err := os.Stat(postgres); err != nil {
			return fmt.Errorf("cannot check: %w", err)
		}
		_, err = m.Run(ctx, machine.Command{Name: postgres, User: "postgres",
			Args: []string{"-C", "shared_buffers", "-c", "config_file=" + conf, "-D", dir}})
		return err
	}
}
