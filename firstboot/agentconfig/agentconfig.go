// Package agentconfig reads the first-boot agent's own settings from
// <root>/etc/appliance/agent.yml: which env.yml sources discovery may try and in which
// order, the time budget of the whole discovery, and the metadata services' base URLs.
// A missing file means the defaults; a present one is read strictly, and every problem
// is reported with file:line:column.
package agentconfig

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ethikkom/ecs-appliance/env"
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

// Config is the agent's settings, as agent.yml spells them.
type Config struct {
	Sources   []string      `yaml:"sources"` // allowed sources, in the order they are tried
	Budget    time.Duration `yaml:"budget"`  // bounds the whole discovery, network sources included
	Endpoints Endpoints     `yaml:"endpoints"`
}

// Endpoints are the metadata services' base URLs, without a trailing slash.
type Endpoints struct {
	EC2       string `yaml:"ec2"`
	GCE       string `yaml:"gce"`
	OpenStack string `yaml:"openstack"`
}

// Default returns the settings used when agent.yml does not exist.
func Default() Config {
	return Config{
		Sources:   AllSources(),
		Budget:    DefaultBudget,
		Endpoints: Endpoints{EC2: DefaultEndpoint, GCE: DefaultEndpoint, OpenStack: DefaultEndpoint},
	}
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

// Parse decodes agent.yml from data; name is used in messages. Package env decodes it
// strictly (unknown keys, wrong types, YAML syntax); this adds the checks of values
// only agent.yml has. Keys left out, or set to nothing, keep their defaults. The error,
// if any, is an env.ErrorList in file order.
func Parse(name string, data []byte) (Config, error) {
	c := Default()
	// Config's tags give no warnings.
	at, _, err := env.DecodeAt(name, data, &c)
	var errs env.ErrorList
	if err != nil && (!errors.As(err, &errs) || at == nil) {
		return Config{}, err // the file did not parse (syntax, duplicate key, not one mapping)
	}
	// One error per value: a value env rejected, or one already reported, is not checked further.
	reported := map[env.Position]bool{}
	for _, e := range errs {
		reported[e.Position] = true
	}
	failf := func(key, format string, args ...any) {
		if p := at[key]; !reported[p] {
			reported[p] = true
			errs = append(errs, &env.Error{Position: p, Msg: fmt.Sprintf(format, args...)})
		}
	}

	all := strings.Join(AllSources(), ", ")
	if _, given := at["sources"]; given {
		if _, first := at["sources.0"]; !first {
			failf("sources", "sources must name at least one source (%s)", all)
		}
	}
	for i, s := range c.Sources {
		k := "sources." + strconv.Itoa(i)
		switch {
		case !slices.Contains(AllSources(), s):
			failf(k, "unknown source %q (known sources: %s)", s, all)
		case slices.Contains(c.Sources[:i], s):
			failf(k, "source %q is listed twice", s)
		}
	}
	for key, u := range map[string]*string{SourceEC2: &c.Endpoints.EC2, SourceGCE: &c.Endpoints.GCE, SourceOpenStack: &c.Endpoints.OpenStack} {
		if !validBaseURL(*u) {
			failf("endpoints."+key, "endpoints.%s must be an http:// or https:// base URL such as %s", key, DefaultEndpoint)
		}
		*u = strings.TrimRight(*u, "/")
	}

	if len(errs) > 0 {
		slices.SortStableFunc(errs, func(a, b *env.Error) int {
			return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
		})
		return Config{}, errs
	}
	return c, nil
}

// validBaseURL accepts an http(s) URL naming a host, with at most a path prefix.
func validBaseURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.RawQuery == "" && u.Fragment == ""
}
