// Package docker is the container engine the ECS application runs in, and the one
// place that says where the containers reach the host's services: the bridge address
// postgresql and postfix listen on.
package docker

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/images"
)

// The default bridge, pinned in daemon.json so the host's services can listen on it.
const (
	BridgeIP  = "172.17.0.1"
	BridgeNet = "172.17.0.0/16"
)

const (
	daemonJSON = "/etc/docker/daemon.json"
	// Host services bind to the bridge address before docker has made the bridge
	// (they start in parallel); the kernel allows that with nonlocal_bind.
	sysctlFile = "/etc/sysctl.d/60-appliance-bridge.conf"
)

// Service is docker.
type Service struct{}

// Spec implements services.Service.
func (Service) Spec(*env.Env) services.Spec {
	return services.Spec{
		Name:   "docker",
		Units:  []string{"docker.service"},
		Reload: services.Restart,
		Dirs:   []machine.Dir{{Path: "/volatile/docker"}},
		Relocations: []services.Relocation{
			{Source: "/var/lib/docker", Target: "/volatile/docker", Units: []string{"docker.socket", "docker.service"}},
		},
	}
}

// Files implements services.Service.
func (Service) Files(*services.Context) ([]machine.File, error) {
	return []machine.File{
		{Path: daemonJSON, Data: []byte(`{
  "bip": "` + BridgeIP + `/16",
  "storage-driver": "overlay2",
  "log-driver": "journald"
}
`)},
	}, nil
}

// Prepare writes the sysctl and applies it now, before postgresql and postfix start;
// systemd-sysctl applies it at later boots.
func (Service) Prepare(ctx context.Context, c *services.Context) error {
	text := "# Written by appliance-agent: postgresql and postfix listen on the docker bridge\n# (" + BridgeIP + ") and may start before docker makes it.\nnet.ipv4.ip_nonlocal_bind = 1\n"
	if _, err := c.Write(ctx, machine.File{Path: sysctlFile, Data: []byte(text)}); err != nil || !c.M.Live() {
		return err
	}
	_, err := c.M.Run(ctx, machine.Command{Name: "sysctl", Args: []string{"-q", "-p", sysctlFile}})
	return err
}

// LoadArchives loads the image archives baked into the disk image (images.ArchiveDir)
// whose images docker does not have yet, so builds never need a registry for them.
// The builds call it before they start (the first build of ECS or of pdf-as), so an
// appliance that never builds, standing by, does not spend the time.
func LoadArchives(ctx context.Context, m *machine.Machine) error {
	archives, err := filepath.Glob(m.Path(filepath.Join(images.ArchiveDir, "*.tar")))
	if err != nil || len(archives) == 0 {
		return err
	}
	for _, a := range archives {
		refs, err := ArchiveRefs(a)
		if err != nil {
			return err
		}
		missing := false
		for _, r := range refs {
			if _, err := m.Run(ctx, machine.Command{Name: "docker", Args: []string{"image", "inspect", "--format", "{{.Id}}", r}}); err != nil {
				missing = true
			}
		}
		if !missing {
			continue
		}
		if _, err := m.Run(ctx, machine.Command{Name: "docker", Args: []string{"load", "-q", "-i", a}}); err != nil {
			return fmt.Errorf("loading %s: %w", a, err)
		}
		m.Out.Detail("loaded %s from %s", strings.Join(refs, " "), filepath.Base(a))
	}
	return nil
}

// ArchiveRefs are the image references a docker load archive tags (manifest.json's
// RepoTags).
func ArchiveRefs(archive string) ([]string, error) {
	f, err := os.Open(archive)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f) // skips the layers by seeking
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("%s: no manifest.json: not an image archive", archive)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", archive, err)
		}
		if h.Name != "manifest.json" {
			continue
		}
		var manifest []struct{ RepoTags []string }
		if err := json.NewDecoder(tr).Decode(&manifest); err != nil {
			return nil, fmt.Errorf("%s: manifest.json: %w", archive, err)
		}
		var refs []string
		for _, m := range manifest {
			refs = append(refs, m.RepoTags...)
		}
		if len(refs) == 0 {
			return nil, fmt.Errorf("%s: the archive tags no image", archive)
		}
		return refs, nil
	}
}
