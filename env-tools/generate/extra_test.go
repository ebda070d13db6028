package generate

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/env"
)

const (
	testDSN    = "https://0123abcd@sentry.example.org/7"
	testSSHKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGm8sZ7cU1QvT6cQ8k0p1dXwYw5Qz5r2m3n4o5p6q7r8 admin@laptop"
)

const testExtra = `# every key env-create's --extra knew
ssh_authorized_keys:
  - ` + testSSHKey + `
appliance:
  sentry:
    dsn: ` + testDSN + `
  metric:
    exporter: true
    gui: false
  git:
    source: https://git.example.org/ecs-appliance.git
    branch: production
  extra:
    files:
      - path: /etc/motd
        content: hello\nworld
        owner: root:root
        permissions: 0644
      - path: /root/notes.txt
        contents: |
          one: 1
          'two' "three" # not a comment
        owner: root
        permissions: "0600"
  update:
    oncalendar: Sun *-*-* 06:30:00
ecs:
  git:
    branch: stable
`

func newExtraEnv(t testing.TB) []byte {
	t.Helper()
	out, err := New(Options{Domain: testDomain, KeyType: Ed25519, Extra: []byte(testExtra), ExtraName: "site-extra.yml"})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestExtraMerge: every key of extra.yml lands where the original template put
// it; the sentry DSN also sets SENTRY_DSN in the settings, and `content` with
// literal \n becomes `contents` with real newlines.
func TestExtraMerge(t *testing.T) {
	out := newExtraEnv(t)
	e := parse(t, out)
	a := e.Appliance
	if !reflect.DeepEqual(e.SSHAuthorizedKeys, []string{testSSHKey}) {
		t.Errorf("ssh_authorized_keys = %q", e.SSHAuthorizedKeys)
	}
	if a.Sentry.DSN != testDSN {
		t.Errorf("appliance.sentry.dsn = %q", a.Sentry.DSN)
	}
	if !strings.Contains(e.ECS.Settings, "\nSENTRY_DSN = '"+testDSN+"'\n") || strings.Contains(e.ECS.Settings, "# SENTRY_DSN") {
		t.Errorf("settings lack SENTRY_DSN:\n%s", e.ECS.Settings)
	}
	if !a.Metric.Exporter || a.Metric.GUI || a.Metric.Server {
		t.Errorf("appliance.metric = %+v", a.Metric)
	}
	if a.Git.Source != "https://git.example.org/ecs-appliance.git" || a.Git.Branch != "production" {
		t.Errorf("appliance.git = %+v", a.Git)
	}
	want := []env.ExtraFile{
		{Path: "/etc/motd", Contents: "hello\nworld\n", Owner: "root:root", Permissions: "0644"},
		{Path: "/root/notes.txt", Contents: "one: 1\n'two' \"three\" # not a comment\n", Owner: "root", Permissions: "0600"},
	}
	if !reflect.DeepEqual(a.Extra.Files, want) {
		t.Errorf("appliance.extra.files = %#v", a.Extra.Files)
	}
	if a.Update.OnCalendar != "Sun *-*-* 06:30:00" || a.Update.Automatic == nil || !*a.Update.Automatic {
		t.Errorf("appliance.update = %+v", a.Update)
	}
	if e.ECS.Git.Branch != "stable" {
		t.Errorf("ecs.git = %+v", e.ECS.Git)
	}
	if strings.Contains(string(out), "content:") {
		t.Error("output still uses the deprecated key content")
	}
	if got, want := keys(value(e.Document.Content[0], "appliance")), "domain ssl sentry metric git extra update storage dkim backup"; got != want {
		t.Errorf("appliance keys %q, want %q", got, want)
	}
}

// TestExtraErrors: problems in extra.yml are reported with file:line:column and
// without the values, and before any key is generated.
func TestExtraErrors(t *testing.T) {
	for _, c := range []struct{ name, extra, want string }{
		{"unknown top-level key", "apliance: {}\n",
			`site-extra.yml:1:1: unknown key apliance; did you mean "appliance"?`},
		{"unknown nested key", "appliance:\n  sentry:\n    dns: " + testDSN + "\n",
			"site-extra.yml:3:5: unknown key appliance.sentry.dns; did you mean \"dsn\"?\n" +
				"site-extra.yml:3:5: missing required key appliance.sentry.dsn"},
		{"key the original did not merge", "appliance:\n  ssl:\n    key: x\n",
			`site-extra.yml:2:3: unknown key appliance.ssl (known keys: extra, git, metric, sentry, update)`},
		{"duplicate key", "ecs:\n  git:\n    branch: a\n    branch: b\n",
			`site-extra.yml:4:5: invalid YAML: key "branch" is already defined at line 3`},
		{"not a mapping", "- a\n", "site-extra.yml:1:1: the file must be a mapping of keys, found a list"},
		{"bool", "appliance:\n  metric:\n    gui: yes\n", "site-extra.yml:3:10: appliance.metric.gui must be true or false, found a string"},
		{"ssh keys not a list", "ssh_authorized_keys: ssh-ed25519 AAAA\n",
			"site-extra.yml:1:22: ssh_authorized_keys must be a list, found a string"},
		{"bad DSN", "appliance:\n  sentry:\n    dsn: ftp://s3cr3t@sentry.example.org/1\n",
			"site-extra.yml:3:10: appliance.sentry.dsn must be an http or https URL"},
		{"quote in DSN", "appliance:\n  sentry:\n    dsn: https://s3cr3t@sentry.example.org/1'\n",
			"site-extra.yml:3:10: appliance.sentry.dsn must consist of printable ASCII without quotes or backslashes"},
		{"content and contents", "appliance:\n  extra:\n    files:\n      - path: /a\n        content: x\n        contents: y\n",
			"site-extra.yml:4:9: appliance.extra.files.0: give either contents or content, not both"},
		{"file fields", "appliance:\n  extra:\n    files:\n      - contents: y\n        owner: Root Admin\n        permissions: rw\n",
			"site-extra.yml:4:9: missing required key appliance.extra.files.0.path\n" +
				"site-extra.yml:5:16: appliance.extra.files.0.owner must be user or user:group\n" +
				"site-extra.yml:6:22: appliance.extra.files.0.permissions must be an octal mode such as \"0600\""},
		{"relative path", "appliance:\n  extra:\n    files:\n      - path: etc/motd\n",
			"site-extra.yml:4:15: appliance.extra.files.0.path must be an absolute path"},
		{"calendar", "appliance:\n  update:\n    oncalendar: Sun 25:00\n",
			`site-extra.yml:3:17: appliance.update.oncalendar is not a systemd calendar expression: the hour must be * or numbers from 0 to 23`},
		{"calendar is not repeated", "appliance:\n  update:\n    oncalendar: s3cr3t 06:30\n",
			`site-extra.yml:3:17: appliance.update.oncalendar is not a systemd calendar expression: weekdays must be Mon … Sun`},
		{"second document", "ecs: {}\n---\necs: {}\n", "site-extra.yml:2:1: a second YAML document starts here"},
		{"malformed YAML", "appliance:\n  git:\n    source: a\n   branch: b\n", `site-extra.yml:4:4: invalid YAML: `},
		{"unclosed flow", "appliance:\n  sentry: {dsn: [\n", `site-extra.yml:2:3: invalid YAML: `},
		{"tab", "appliance:\n\tgit: {}\n", `site-extra.yml:2:1: invalid YAML: found character that cannot start any token`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(Options{Domain: testDomain, Extra: []byte(c.extra), ExtraName: "site-extra.yml"})
			var list env.ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error %v is not an env.ErrorList", err)
			}
			// Where want stops short of the end, the rest is yaml.v3's wording.
			if !strings.HasPrefix(err.Error(), c.want) {
				t.Errorf("error\n%v\nwant\n%s", err, c.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error reveals a value: %v", err)
			}
		})
	}
}

func TestEmptyExtra(t *testing.T) {
	for _, data := range []string{"", "# nothing\n", "appliance:\necs:\n"} {
		x, err := parseExtra("extra.yml", []byte(data))
		if err != nil || !reflect.DeepEqual(x, &extra{}) {
			t.Errorf("%q: %+v, %v", data, x, err)
		}
	}
}
