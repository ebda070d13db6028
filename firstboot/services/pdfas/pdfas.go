// Package pdfas is pdf-as-web, the signing service ECS calls (PDFAS_SERVICE,
// https://<domain>/pdf-as-web/): an image the agent builds from the Tomcat base
// ecs.pdfas.base pins and the war and configuration it downloads and checks, run as
// the compose project's pdfas service by its own unit, so that a failing pdf-as never
// stops ECS. It runs only when ecs.pdfas.base is set.
package pdfas

import (
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"strings"
	"text/template"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/tls"
)

// Where pdf-as lives on the machine and in docker, and its limits.
const (
	// Dir holds its settings, the checked downloads and the build context.
	Dir = "/app/etc/pdfas"
	// ContextDir is the image's build context: Dockerfile and entrypoint written
	// from this package, the war and configuration placed by AfterApp.
	ContextDir = Dir + "/image"
	// Properties is pdf-as-web's configuration for the domain, mounted read-only.
	Properties = Dir + "/pdf-as-web.properties"
	// Unit runs the compose service (docker compose up pdfas).
	Unit = "appliance-pdfas.service"
	// ComposeService is the compose project's service, in a profile of the same name,
	// so the application's unit never starts it.
	ComposeService = "pdfas"
	// Repository names the images built here, tagged by what went into them.
	Repository = "ecs/pdfas"
	// Address is where Tomcat listens for nginx's /pdf-as-web.
	Address = "127.0.0.1:5095"
	// MemLimit caps the container (the JVM takes up to 1024m of heap), as the original.
	MemLimit = "1144m"
	// CPUShares makes pdf-as yield the CPU to ECS and the host's services when both
	// want it (cgroup weight 10 against their 100): a JVM starting beside a build of
	// ECS would otherwise slow it down. New: the original set none.
	CPUShares = 256
)

// Volumes are what the container mounts: its settings and the certificate to trust.
var Volumes = []string{
	Properties + ":/app/pdf-as-web/pdf-as-web.properties:ro",
	tls.CertPath + ":/app/import/server.cert.pem:ro",
}

var (
	//go:embed Dockerfile
	dockerfile []byte
	//go:embed entrypoint.sh
	entrypoint []byte
	//go:embed pdf-as-web.properties.tmpl
	propertiesText string
	propertiesTmpl = template.Must(template.New("pdf-as-web.properties").Parse(propertiesText))
)

// Enabled says whether e runs pdf-as.
func Enabled(e *env.Env) bool { return e.ECS.PDFAS.Base != "" }

// Image is the tag of the image e's pins and this package's build files make: a new
// pin or a new Dockerfile is a new image, the same ones find the image built before.
func Image(e *env.Env) string {
	p := e.ECS.PDFAS
	h := sha256.New()
	for _, part := range [][]byte{[]byte(p.Base), []byte(p.War.SHA256), []byte(p.Config.SHA256), dockerfile, entrypoint} {
		h.Write(part)
		h.Write([]byte{0})
	}
	return Repository + ":" + hex.EncodeToString(h.Sum(nil))[:16]
}

// Service is pdf-as in the agent's stack.
type Service struct{}

// Spec implements services.Service. Its unit is started by AfterApp once the image
// exists, so it is one the start phase only restarts when it runs.
func (Service) Spec(e *env.Env) services.Spec {
	s := services.Spec{Name: "pdfas", Reads: []string{"ecs.pdfas", "appliance.domain"}}
	if Enabled(e) {
		s.Later = []string{Unit}
		s.Reload = services.Restart // the entrypoint imports the certificate at start
		s.Watch = []string{tls.CertPath}
	}
	return s
}

// Files implements services.Service.
func (Service) Files(c *services.Context) ([]machine.File, error) {
	if !Enabled(c.Env) {
		return nil, nil
	}
	d := c.Env.Appliance.Domain
	var props bytes.Buffer
	err := propertiesTmpl.Execute(&props, map[string]string{
		// A regular expression in a properties file: the dot escaped for the regular
		// expression, the backslash for the properties file.
		"Domain": d, "DomainPattern": strings.ReplaceAll(d, ".", `\\.`),
	})
	if err != nil {
		return nil, err
	}
	return []machine.File{
		{Path: Properties, Data: props.Bytes()},
		{Path: ContextDir + "/Dockerfile", Data: dockerfile},
		{Path: ContextDir + "/entrypoint.sh", Data: entrypoint, Mode: 0o755},
	}, nil
}

// Prepare stops pdf-as when the env no longer asks for it.
func (Service) Prepare(ctx context.Context, c *services.Context) error {
	if Enabled(c.Env) {
		return nil
	}
	active, err := c.M.Systemd.Active(ctx, []string{Unit})
	if err != nil || len(active) == 0 {
		return err
	}
	if err := c.M.Systemd.Stop(ctx, Unit); err != nil {
		return err
	}
	c.M.Out.Detail("stopped %s: ecs.pdfas.base is no longer set", Unit)
	c.Did()
	return nil
}

// AfterApp builds the image when it does not exist yet and starts pdf-as, once the
// boot has deployed ECS: on a small machine a JVM starting beside ECS's build or start
// slows them down. A failure (a download, a base image that is missing or not the
// pinned one) is shown in the status and leaves ECS running without pdf-as.
func (Service) AfterApp(ctx context.Context, c *services.Context) (bool, error) {
	if !Enabled(c.Env) {
		return false, nil
	}
	if !c.M.Live() {
		c.M.Out.Detail("would build %s and start %s (not the running system)", Image(c.Env), Unit)
		return false, nil
	}
	b := &builder{m: c.M, p: c.Env.ECS.PDFAS, image: Image(c.Env)}
	built, err := b.ensure(ctx)
	if err != nil {
		c.Note("pdf-as is not running: " + err.Error())
		c.M.Out.Detail("pdf-as is not running: %v", err)
		return false, nil
	}
	active, err := c.M.Systemd.Active(ctx, []string{Unit})
	if err != nil {
		return built, err
	}
	switch {
	case len(active) == 0:
		err = c.M.Systemd.Start(ctx, Unit)
	case built: // the unit runs the image it started with
		err = c.M.Systemd.Restart(ctx, Unit)
	}
	return built, err
}
