// Package agentconfig reads the first-boot agent's own settings from
// <root>/etc/appliance/agent.yml: which env.yml sources discovery may try and in which
// order, the time budget of the whole discovery, and the metadata services' base URLs.
// A missing file means the defaults; a present one is read strictly, and every problem
// is reported with file:line:column.
package agentconfig

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Names of the env.yml sources.
const (
	SourceEnvFile     = "env-file"    // the file named by $ENV_YML
	SourceLocal       = "local"       // <root>/app/env.yml
	SourceNoCloud     = "nocloud"     // user-data on a filesystem labelled cidata
	SourceConfigDrive = "configdrive" // openstack/latest/user_data on a filesystem labelled config-2
	SourceEC2         = "ec2"         // EC2 instance metadata service (IMDSv2, falling back to v1)
	SourceGCE         = "gce"         // GCE metadata server
	SourceOpenStack   = "openstack"   // OpenStack metadata service
)

// Path is where the settings live, relative to the root.
const Path = "etc/appliance/agent.yml"

// DefaultBudget bounds the whole discovery when agent.yml does not say otherwise.
const DefaultBudget = 5 * time.Second

// DefaultEndpoint is the link-local address every supported cloud serves metadata on.
// The address, not metadata.google.internal, because DNS may not work yet at first boot.
const DefaultEndpoint = "http://169.254.169.254"

// AllSources returns every known source in the default order: the original appliance's
// order, with the OpenStack metadata service last.
func AllSources() []string {
	return []string{SourceEnvFile, SourceLocal, SourceNoCloud, SourceConfigDrive, SourceEC2, SourceGCE, SourceOpenStack}
}

// Config is the agent's settings.
type Config struct {
	Sources   []string      // allowed sources, in the order they are tried
	Budget    time.Duration // bounds the whole discovery, network sources included
	Endpoints Endpoints
}

// Endpoints are the metadata services' base URLs, without a trailing slash.
type Endpoints struct {
	EC2       string
	GCE       string
	OpenStack string
}

// Default returns the settings used when agent.yml does not exist.
func Default() Config {
	return Config{
		Sources:   AllSources(),
		Budget:    DefaultBudget,
		Endpoints: Endpoints{EC2: DefaultEndpoint, GCE: DefaultEndpoint, OpenStack: DefaultEndpoint},
	}
}

// Error is one problem in agent.yml; Line and Col count from 1, 0 means unknown.
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

func (e *Error) Error() string {
	switch {
	case e.Line == 0:
		return e.File + ": " + e.Msg
	case e.Col == 0:
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// ErrorList is every problem found in one file, in file order.
type ErrorList []*Error

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Load reads <root>/etc/appliance/agent.yml, or returns Default() when it does not exist.
func Load(root string) (Config, error) {
	name := filepath.Join(root, Path)
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return Default(), nil
	}
	if err != nil {
		return Config{}, err
	}
	return Parse(name, data)
}

// Parse decodes agent.yml from data; name is used in messages. Keys left out keep their
// defaults. The error, if any, is an ErrorList.
func Parse(name string, data []byte) (Config, error) {
	c := Default()
	root, err := parseDocument(name, data)
	if err != nil || root == nil {
		return c, err
	}
	d := &decoder{file: name}
	d.top(root, &c)
	if len(d.errs) > 0 {
		return Config{}, d.errs
	}
	return c, nil
}

// parseDocument returns the single document's top node, nil for an empty file.
func parseDocument(name string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntaxError(name, data, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, ErrorList{{name, extra.Line, extra.Column, "a second YAML document starts here; agent.yml must be one document"}}
	} else if !errors.Is(err, io.EOF) {
		return nil, syntaxError(name, data, err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	n := resolve(doc.Content[0])
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil, nil // a document of only comments or "~"
	}
	return n, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError positions a yaml.v3 parse error, which names a line but no column.
func syntaxError(name string, data []byte, err error) error {
	m := yamlLine.FindStringSubmatch(err.Error())
	if m == nil {
		return ErrorList{{File: name, Msg: "invalid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}}
	}
	line, _ := strconv.Atoi(m[1])
	col := 0
	if lines := bytes.Split(data, []byte("\n")); line >= 1 && line <= len(lines) {
		col = len(lines[line-1]) - len(bytes.TrimLeft(lines[line-1], " \t")) + 1
	}
	return ErrorList{{name, line, col, "invalid YAML: " + m[2]}}
}

// decoder walks the node tree itself (rather than yaml.Decoder.KnownFields) so that
// every error, not just the first, gets a line and a column.
type decoder struct {
	file string
	errs ErrorList
}

func (d *decoder) errorf(n *yaml.Node, format string, args ...any) {
	d.errs = append(d.errs, &Error{d.file, n.Line, n.Column, fmt.Sprintf(format, args...)})
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// mapping calls fn for each key of a mapping node, rejecting unknown and repeated keys.
func (d *decoder) mapping(n *yaml.Node, what string, known []string, fn func(key string, v *yaml.Node)) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "%s must be a mapping with the keys %s", what, strings.Join(known, ", "))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		switch {
		case !slices.Contains(known, k.Value):
			d.errorf(k, "unknown key %q in %s (known keys: %s)", k.Value, what, strings.Join(known, ", "))
		case seen[k.Value]:
			d.errorf(k, "key %q appears twice in %s", k.Value, what)
		default:
			seen[k.Value] = true
			fn(k.Value, v)
		}
	}
}

func (d *decoder) top(n *yaml.Node, c *Config) {
	d.mapping(n, "agent.yml", []string{"sources", "budget", "endpoints"}, func(key string, v *yaml.Node) {
		switch key {
		case "sources":
			c.Sources = d.sources(v)
		case "budget":
			c.Budget = d.budget(v)
		case "endpoints":
			d.endpoints(v, &c.Endpoints)
		}
	})
}

func (d *decoder) sources(n *yaml.Node) []string {
	all := AllSources()
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "sources must be a list of source names (%s)", strings.Join(all, ", "))
		return nil
	}
	if len(n.Content) == 0 {
		d.errorf(n, "sources must name at least one source (%s)", strings.Join(all, ", "))
	}
	var out []string
	for _, item := range n.Content {
		item = resolve(item)
		switch {
		case item.Kind != yaml.ScalarNode:
			d.errorf(item, "each entry of sources must be a source name (%s)", strings.Join(all, ", "))
		case !slices.Contains(all, item.Value):
			d.errorf(item, "unknown source %q (known sources: %s)", item.Value, strings.Join(all, ", "))
		case slices.Contains(out, item.Value):
			d.errorf(item, "source %q is listed twice", item.Value)
		default:
			out = append(out, item.Value)
		}
	}
	return out
}

func (d *decoder) budget(n *yaml.Node) time.Duration {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, "budget must be a duration such as 5s or 1m30s")
		return 0
	}
	b, err := time.ParseDuration(n.Value)
	if err != nil || b <= 0 {
		d.errorf(n, "budget %q is not a positive duration such as 5s or 1m30s", n.Value)
	}
	return b
}

func (d *decoder) endpoints(n *yaml.Node, e *Endpoints) {
	d.mapping(n, "endpoints", []string{SourceEC2, SourceGCE, SourceOpenStack}, func(key string, v *yaml.Node) {
		u := d.baseURL(key, v)
		switch key {
		case SourceEC2:
			e.EC2 = u
		case SourceGCE:
			e.GCE = u
		case SourceOpenStack:
			e.OpenStack = u
		}
	})
}

// baseURL accepts an http(s) URL naming a host, with at most a path prefix.
func (d *decoder) baseURL(key string, n *yaml.Node) string {
	u, err := url.Parse(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil || (u.Scheme != "http" && u.Scheme != "https") ||
		u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		d.errorf(n, "endpoints.%s must be an http:// or https:// base URL such as %s", key, DefaultEndpoint)
		return ""
	}
	return strings.TrimRight(n.Value, "/")
}
