// Package status publishes what the appliance is doing: an HTML page nginx serves
// while the stack is not up (rendered from the template in images/, escaped by
// html/template) and the same facts as JSON for machines.
package status

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/images"
	"github.com/ethikkom/ecs-appliance/internal/atomicfile"
)

// Paths under the agent's root. PagePath is where the original put its 503 page, which
// nginx serves with status 503 while the file exists.
const (
	PagePath = "var/www/html/503.html"
	JSONPath = "run/appliance/status.json"
)

// States of the appliance.
const (
	Starting = "starting"
	Standby  = "standby"
	Error    = "error"
	Running  = "running"
	// Ready: the host services are up, but no application serves yet, so the page
	// stays and nginx answers with it.
	Ready   = "ready"
	Stopped = "stopped"
)

// Status is one report.
type Status struct {
	State   string    `json:"state"`
	Title   string    `json:"title"`
	Message string    `json:"message"`
	Phase   string    `json:"phase,omitempty"`
	Domain  string    `json:"domain,omitempty"`
	Source  string    `json:"source,omitempty"` // where env.yml came from
	SHA256  string    `json:"sha256,omitempty"` // of the active env.yml
	Time    time.Time `json:"time"`
	// Services are the configured services' states; Certificate is the server
	// certificate in use.
	Services    []services.State      `json:"services,omitempty"`
	Certificate *services.Certificate `json:"certificate,omitempty"`
	App         *App                  `json:"app,omitempty"`
}

// App is what the application lifecycle left: the commit served and what the admin
// must know (a failed build or migration and the rollback).
type App struct {
	Serving string `json:"serving,omitempty"`
	Notice  string `json:"notice,omitempty"`
}

var page = template.Must(template.ParseFS(images.FS, images.StatusTemplatePath))

// Publish writes the JSON and, unless the appliance is running, the page; a running
// appliance has no page, so nginx serves the application.
func Publish(root string, s Status) error {
	js, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	jsonPath := filepath.Join(root, JSONPath)
	if err := os.MkdirAll(filepath.Dir(jsonPath), 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteFile(jsonPath, append(js, '\n'), atomicfile.Options{Perm: 0o644}); err != nil {
		return err
	}
	pagePath := filepath.Join(root, PagePath)
	if s.State == Running {
		if err := os.Remove(pagePath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	var html bytes.Buffer
	if err := page.Execute(&html, s); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(pagePath), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(pagePath, html.Bytes(), atomicfile.Options{Perm: 0o644})
}

// Read returns the last published status.
func Read(root string) (Status, error) {
	var s Status
	data, err := os.ReadFile(filepath.Join(root, JSONPath))
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(data, &s)
}

// String is the status for people.
func (s Status) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", s.Title, s.Message)
	fmt.Fprintf(&b, "  state   %s\n", s.State)
	if s.Phase != "" {
		fmt.Fprintf(&b, "  phase   %s\n", s.Phase)
	}
	if s.Domain != "" {
		fmt.Fprintf(&b, "  domain  %s\n", s.Domain)
	}
	if s.Source != "" {
		fmt.Fprintf(&b, "  env     from %s, sha256 %s\n", s.Source, s.SHA256)
	}
	if c := s.Certificate; c != nil {
		fmt.Fprintf(&b, "  cert    %s, valid until %s\n", c.Source, c.NotAfter.UTC().Format(time.RFC3339))
		if c.Notice != "" {
			fmt.Fprintf(&b, "          %s\n", c.Notice)
		}
	}
	for _, sv := range s.Services {
		fmt.Fprintf(&b, "  service %-10s %s", sv.Name, sv.State)
		if sv.Note != "" {
			fmt.Fprintf(&b, ": %s", sv.Note)
		}
		fmt.Fprintln(&b)
	}
	fmt.Fprintf(&b, "  since   %s\n", s.Time.UTC().Format(time.RFC3339))
	return b.String()
}
