// Package images is what goes into the appliance image, as data: the stack the agent
// starts, the status page template, the agent's default settings and the systemd
// units. It is embedded so the agent and the Packer provisioner read the same files.
package images

import (
	"embed"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

//go:embed appliance systemd
var FS embed.FS

// Paths of the data inside FS.
const (
	StatusTemplatePath = "appliance/status.html.tmpl"
	AgentConfigPath    = "appliance/agent.yml"
	stackPath          = "appliance/stack.yml"
)

// Stack is what the agent starts and then waits for.
type Stack struct {
	// Units are started in order with systemctl.
	Units []string `yaml:"units"`
	// Checks must all pass before Deadline for the start to count as done.
	Checks   []Check       `yaml:"checks"`
	Deadline time.Duration `yaml:"deadline"`
}

// Check is one health check: an HTTP GET that gets any answer (nginx answers 503
// while the status page is up), or a TCP connect.
type Check struct {
	Name string `yaml:"name"`
	HTTP string `yaml:"http"`
	TCP  string `yaml:"tcp"`
}

// LoadStack reads the stack definition shipped in the image.
func LoadStack() (*Stack, error) {
	data, err := FS.ReadFile(stackPath)
	if err != nil {
		return nil, err
	}
	var s Stack
	if err := yaml.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", stackPath, err)
	}
	for _, c := range s.Checks {
		if (c.HTTP == "") == (c.TCP == "") {
			return nil, fmt.Errorf("%s: check %q needs exactly one of http and tcp", stackPath, c.Name)
		}
	}
	return &s, nil
}
