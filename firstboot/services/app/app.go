// Package app is the ECS application: its source from git, the images built from it,
// the compose project that runs them behind nginx, and the lifecycle that moves from
// one build to the next (build, safety dump, migrate, start, roll back), recorded in
// the agent's state store. The appliance builds and runs whatever repository
// ecs.git.source names, as long as it follows ECS's container contract.
package app

import (
	"bytes"
	_ "embed"
	"fmt"
	"text/template"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/cache"
	"github.com/ethikkom/ecs-appliance/firstboot/services/docker"
	"github.com/ethikkom/ecs-appliance/firstboot/services/mail"
	"github.com/ethikkom/ecs-appliance/firstboot/services/pdfas"
	"github.com/ethikkom/ecs-appliance/firstboot/services/postgresql"
)

// Paths on the machine.
const (
	SourceDir   = "/app/ecs"      // the checkout, owned by app
	DocsDir     = "/app/ecs-docs" // the user manual's checkout
	ProjectDir  = "/app/etc/ecs"  // the compose project
	ComposeFile = ProjectDir + "/docker-compose.yml"
	// EnvFile and SettingsFile are the containers' configuration, 0600 for app: the
	// settings are Python source with the secrets, read by the app's own user.
	EnvFile      = ProjectDir + "/ecs.env"
	ServiceURLs  = ProjectDir + "/service_urls.env"
	SettingsFile = ProjectDir + "/settings.py"
	DumpDir      = "/data/ecs-pgdump"
	// Unit runs the compose project (systemctl start|stop|restart appliance).
	Unit = "appliance.service"
	// Repository is the name of the images built from the source; RunningTag is the
	// one the compose project runs, moved by the lifecycle to the build it chose.
	Repository = "ecs/ecs"
	RunningTag = Repository + ":running"
	// containerSettings is where the containers see SettingsFile.
	containerSettings = "/etc/ecs/settings.py"
	appUID            = "1000" // the app user, inside the image and on the host
)

// ports the compose project publishes on loopback.
const (
	WebAddress  = "127.0.0.1:5000"
	SMTPAddress = "127.0.0.1:5025"
)

var (
	//go:embed docker-compose.yml.tmpl
	composeText string
	composeTmpl = template.Must(template.New("docker-compose.yml").Parse(composeText))
)

// Service is the ECS application.
type Service struct{}

// Spec implements services.Service. The compose project's unit is started by the
// lifecycle once an image exists, not by the start phase.
func (Service) Spec(*env.Env) services.Spec {
	return services.Spec{
		Name:   "app",
		Later:  []string{Unit},
		Reload: services.Restart,
		Reads: []string{"ecs.git", "ecs.docs.git", "ecs.database", "ecs.settings",
			"ecs.userswitcher.enabled", "ecs.vault_encrypt", "ecs.vault_sign", "ecs.pdfas"},
		Dirs: []machine.Dir{
			{Path: "/data/ecs-storage-vault", Owner: appUID + ":" + appUID},
			{Path: "/data/ecs-ca", Owner: appUID + ":" + appUID},
			{Path: "/data/ecs-gpg", Owner: appUID + ":" + appUID, Mode: 0o700},
			{Path: DumpDir, Mode: 0o700},
			{Path: "/volatile/ecs-cache", Owner: appUID + ":" + appUID},
		},
	}
}

// pdfasService is the compose service of pdf-as, nil when the env does not run it.
func pdfasService(e *env.Env) map[string]any {
	if !pdfas.Enabled(e) {
		return nil
	}
	return map[string]any{"Name": pdfas.ComposeService, "Unit": pdfas.Unit, "Image": pdfas.Image(e),
		"Address": pdfas.Address, "MemLimit": pdfas.MemLimit, "CPUShares": pdfas.CPUShares, "Volumes": pdfas.Volumes}
}

// Files implements services.Service.
func (Service) Files(c *services.Context) ([]machine.File, error) {
	e := c.Env
	var compose bytes.Buffer
	err := composeTmpl.Execute(&compose, map[string]any{
		"Image": RunningTag, "HostIP": docker.BridgeIP,
		"EnvFile": EnvFile, "ServiceURLs": ServiceURLs, "DatabaseURL": postgresql.DatabaseURLPath,
		"Volumes": []string{
			"/data/ecs-storage-vault:/app/ecs-storage-vault",
			"/data/ecs-ca:/app/ecs-ca",
			"/data/ecs-gpg:/app/ecs-gpg",
			"/volatile/ecs-cache:/app/ecs-cache",
			SettingsFile + ":" + containerSettings + ":ro",
		},
		"UserSwitcher": e.ECS.UserSwitcher.Enabled,
		"PDFAS":        pdfasService(e),
	})
	if err != nil {
		return nil, err
	}
	// ECS executes ECS_SETTINGS as Python at the end of its settings. The source itself
	// stays in a file: an env file cannot carry every multi-line Python text unchanged.
	envText := fmt.Sprintf("ECS_SETTINGS=exec(open(%q).read())\n",
		containerSettings)
	// Port 25 is stunnel's (mail for ECS); ECS's own mail goes out through postfix.
	urls := fmt.Sprintf("REDIS_URL=redis://%[1]s:%[2]d/0\nMEMCACHED_URL=memcached://%[1]s:%[3]d\nSMTP_URL=smtp://%[1]s:%[4]d\n",
		docker.BridgeIP, cache.RedisPort, cache.MemcachedPort, mail.SubmissionPort)
	return []machine.File{
		{Path: ComposeFile, Data: compose.Bytes()},
		{Path: EnvFile, Data: []byte(envText), Mode: 0o600, Owner: "app"},
		{Path: ServiceURLs, Data: []byte(urls)},
		{Path: SettingsFile, Data: []byte(e.ECS.Settings), Mode: 0o600, Owner: "app"},
	}, nil
}
