// Package images is what goes into the appliance image, as data: the recipe, the
// status page template, the agent's default settings and the systemd units. It is
// embedded so the agent and the Packer provisioner read the same files.
package images

import "embed"

//go:embed appliance systemd
var FS embed.FS

// Paths of the data inside FS.
const (
	StatusTemplatePath = "appliance/status.html.tmpl"
	AgentConfigPath    = "appliance/agent.yml"
)

// ArchiveDir is where the image holds the container image archives baked into it
// (the provisioner's image_archives), which the agent loads into docker.
const ArchiveDir = "/var/lib/appliance/images"
