// Package docker is the container engine the ECS application runs in, and the one
// place that says where the containers reach the host's services: the bridge address
// postgresql and postfix listen on.
package docker

import (
	"context"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
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
