package agentconfig

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ethikkom/ecs-appliance/env"
)

func TestLoadMissingFileGivesDefaults(t *testing.T) {
	c, err := Load(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Sources:   []string{"env-file", "local", "nocloud", "configdrive", "ec2", "gce", "openstack"},
		Budget:    5 * time.Second,
		Endpoints: Endpoints{EC2: "http://169.254.169.254", GCE: "http://169.254.169.254", OpenStack: "http://169.254.169.254"},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v, want %+v", c, want)
	}
}

func TestLoadReadsFileUnderRoot(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc/appliance"), 0o755); err != nil {
		t.Fatal(err)
	}
	doc := "sources: [nocloud, ec2]\nbudget: 1m30s\nendpoints:\n  ec2: http://127.0.0.1:8080/\n"
	if err := os.WriteFile(filepath.Join(root, Path), []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(root)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Sources: []string{"nocloud", "ec2"},
		Budget:  90 * time.Second,
		// the trailing slash goes, the endpoints left out keep their defaults
		Endpoints: Endpoints{EC2: "http://127.0.0.1:8080", GCE: DefaultEndpoint, OpenStack: DefaultEndpoint},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("got %+v, want %+v", c, want)
	}
}

func TestParseEmptyDocumentsGiveDefaults(t *testing.T) {
	for _, doc := range []string{"", "# only a comment\n", "~\n", "---\n"} {
		c, err := Parse("agent.yml", []byte(doc))
		if err != nil {
			t.Fatalf("%q: %v", doc, err)
		}
		if !reflect.DeepEqual(c, Default()) {
			t.Fatalf("%q: got %+v", doc, c)
		}
	}
}

// Every mistake is an error naming file:line:column, and all of them are reported at once.
func TestParseErrorsArePositioned(t *testing.T) {
	cases := []struct {
		doc  string
		want []string
	}{
		{"sourcse: [local]\n", []string{`agent.yml:1:1: unknown key sourcse; did you mean "sources"?`}},
		{"sources: [local, cidata]\n", []string{`agent.yml:1:18: unknown source "cidata"`}},
		{"sources:\n  - local\n  - local\n", []string{`agent.yml:3:5: source "local" is listed twice`}},
		{"sources: []\n", []string{`agent.yml:1:10: sources must name at least one source`}},
		{"sources:\n", []string{`agent.yml:1:9: sources must name at least one source`}},
		{"sources: local\n", []string{`agent.yml:1:10: sources must be a list, found a string`}},
		{"sources: [[local]]\n", []string{`agent.yml:1:11: sources.0 must be a string, found a list`}},
		{"budget: 5\n", []string{`agent.yml:1:9: budget must be a positive duration such as 5s`}},
		{"budget: fast\n", []string{`agent.yml:1:9: budget must be a positive duration`}},
		{"budget: -1s\n", []string{`agent.yml:1:9: budget must be a positive duration`}},
		{"budget: [5s]\n", []string{`agent.yml:1:9: budget must be a positive duration`}},
		{"endpoints:\n  azure: http://x\n", []string{`agent.yml:2:3: unknown key endpoints.azure (known keys: ec2, gce, openstack)`}},
		{"endpoints:\n  ec2: 169.254.169.254\n", []string{`agent.yml:2:8: endpoints.ec2 must be an http:// or https:// base URL`}},
		{"endpoints:\n  gce: ftp://x\n", []string{`agent.yml:2:8: endpoints.gce must be an http://`}},
		{"endpoints: http://x\n", []string{`agent.yml:1:12: endpoints must be a mapping, found a string`}},
		{"budget: 1s\nbudget: 2s\n", []string{`agent.yml:2:1: invalid YAML: key "budget" is already defined at line 1`}},
		{"- local\n", []string{`agent.yml:1:1: the file must be a mapping of keys, found a list`}},
		{"budget: 1s\n---\nbudget: 2s\n", []string{`agent.yml:2:1: a second YAML document`}},
		{"~\n---\nbudget: 2s\n", []string{`agent.yml:2:1: a second YAML document`}},
		{"sources: [local\n", []string{`agent.yml:1:1: invalid YAML`}},
		{
			"sources: [local, nope]\nbudget: soon\nextra: 1\n",
			[]string{`agent.yml:1:18: unknown source "nope"`, "\nagent.yml:2:9: budget must be a positive duration", "\nagent.yml:3:1: unknown key extra"},
		},
	}
	for _, c := range cases {
		_, err := Parse("agent.yml", []byte(c.doc))
		var list env.ErrorList
		if !errors.As(err, &list) {
			t.Errorf("%q: got %v, want an ErrorList", c.doc, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q does not contain %q", c.doc, err, w)
			}
		}
	}
}

func TestLoadReportsFullPath(t *testing.T) {
	root := t.TempDir()
	name := filepath.Join(root, Path)
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte("budget: 5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(root)
	if err == nil || !strings.HasPrefix(err.Error(), name+":1:9: ") {
		t.Fatalf("got %v, want an error starting with %s:1:9", err, name)
	}
}

func TestAliasesAreFollowed(t *testing.T) {
	c, err := Parse("agent.yml", []byte("endpoints:\n  ec2: &u http://10.0.0.1\n  gce: *u\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Endpoints.GCE != "http://10.0.0.1" {
		t.Fatalf("alias not followed: %+v", c.Endpoints)
	}
}
