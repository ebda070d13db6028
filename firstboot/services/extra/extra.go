// Package extra applies appliance.extra of env.yml: files written at every boot, before
// the services that may read them, and Debian packages installed when missing.
package extra

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
)

// Service is appliance.extra.
type Service struct{}

// Spec implements services.Service.
func (Service) Spec(*env.Env) services.Spec {
	return services.Spec{Name: "extra", Reads: []string{"appliance.extra.files", "appliance.extra.packages"}}
}

// Files implements services.Service. Contents get a final newline, as the original's
// prepare_extra_files wrote them.
func (Service) Files(c *services.Context) ([]machine.File, error) {
	var files []machine.File
	for i, f := range c.Env.Appliance.Extra.Files {
		mode, err := strconv.ParseUint(f.Permissions, 8, 32)
		if err != nil {
			return nil, fmt.Errorf("appliance.extra.files.%d.permissions: %w", i, err)
		}
		data := f.Contents
		if !strings.HasSuffix(data, "\n") {
			data += "\n"
		}
		files = append(files, machine.File{Path: f.Path, Data: []byte(data), Mode: fsMode(mode), Owner: f.Owner})
	}
	return files, nil
}

// Prepare installs the packages that are not installed (apt-get, non-interactive); a
// package that cannot be installed fails the phase and is named.
func (Service) Prepare(ctx context.Context, c *services.Context) error {
	pkgs := c.Env.Appliance.Extra.Packages
	if len(pkgs) == 0 {
		return nil
	}
	var missing []string
	for _, p := range pkgs {
		out, err := c.M.Run(ctx, machine.Command{Name: "dpkg-query", Args: []string{"--root=" + c.M.Root(), "-W", "-f=${db:Status-Abbrev}", "--", p}})
		if err != nil || !strings.HasPrefix(string(out), "ii") {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if !c.M.Live() {
		c.M.Out.Detail("would install %s (not the running system)", strings.Join(missing, " "))
		return nil
	}
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	if _, err := c.M.Run(ctx, machine.Command{Name: "apt-get", Args: []string{"update", "-q"}, Env: env}); err != nil {
		c.M.Out.Detail("apt-get update failed, installing from the lists there are: %v", err)
	}
	for _, p := range missing {
		// One at a time, so a failure names its package.
		args := []string{"install", "-y", "-q", "--no-install-recommends", "-o", "Dpkg::Options::=--force-confold", "--", p}
		if _, err := c.M.Run(ctx, machine.Command{Name: "apt-get", Args: args, Env: env}); err != nil {
			return fmt.Errorf("appliance.extra.packages: cannot install %s: %w", p, err)
		}
		c.M.Out.Detail("installed %s", p)
		c.Did()
	}
	return nil
}

func fsMode(m uint64) os.FileMode { return os.FileMode(m) & os.ModePerm }
