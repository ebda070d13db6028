package env

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

func readFixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// parseFixture parses testdata/name as the tools do: read, then Parse.
func parseFixture(t testing.TB, name string) (*Env, []Warning, error) {
	t.Helper()
	return Parse("testdata/"+name, []byte(readFixture(t, name)))
}

// edit returns the template env with old replaced by new (exactly once).
func edit(t testing.TB, old, new string) []byte {
	t.Helper()
	s := readFixture(t, "template-env.yml")
	if strings.Count(s, old) != 1 {
		t.Fatalf("fixture does not contain %q exactly once", old)
	}
	return []byte(strings.Replace(s, old, new, 1))
}

// parseErrors parses data and returns the error lines, failing if it loaded.
func parseErrors(t *testing.T, data []byte) []string {
	t.Helper()
	_, _, err := Parse("env.yml", data)
	if err == nil {
		t.Fatal("Parse accepted an invalid env")
	}
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error is %T, not an ErrorList: %v", err, err)
	}
	return strings.Split(err.Error(), "\n")
}

func wantError(t *testing.T, data []byte, want ...string) {
	t.Helper()
	errs := parseErrors(t, data)
	for _, w := range want {
		found := false
		for _, e := range errs {
			found = found || strings.Contains(e, w)
		}
		if !found {
			t.Errorf("no error contains %q; got:\n%s", w, strings.Join(errs, "\n"))
		}
	}
}

func TestOriginalDefaultEnvLoads(t *testing.T) {
	e, warns, err := parseFixture(t, "default-env.yml")
	if err != nil {
		t.Fatal(err)
	}
	if e.Appliance.Domain != "localhost" || *e.Appliance.SSL.LetsEncrypt.Enabled {
		t.Errorf("domain %q letsencrypt %v", e.Appliance.Domain, *e.Appliance.SSL.LetsEncrypt.Enabled)
	}
	if !e.Appliance.Storage.Ignore.Data || !e.Appliance.Storage.Ignore.Volatile {
		t.Error("storage.ignore not read")
	}
	if !strings.Contains(e.ECS.Settings, "ETHICS_COMMISSION_UUID") || !strings.HasSuffix(e.ECS.VaultSign, "-----END PGP PRIVATE KEY BLOCK-----\n") {
		t.Error("multi-line values not read whole")
	}
	// the original's dead keys load, each with a warning at its line
	joined := ""
	for _, w := range warns {
		joined += w.String() + "\n"
	}
	for _, want := range []string{
		"default-env.yml:17:3: warning: appliance.allowed_hosts is not used",
		"default-env.yml:134:3: warning: ecs.migrate is not used",
		"default-env.yml:138:5: warning: ecs.userswitcher.parameter is not used",
		"appliance.domain is localhost",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("missing warning %q in:\n%s", want, joined)
		}
	}
}

func TestOriginalTemplateEnvLoadsWithDefaults(t *testing.T) {
	e, warns, err := parseFixture(t, "template-env.yml")
	if err != nil {
		t.Fatal(err)
	}
	a := &e.Appliance
	if a.Domain != "ecs.example.org" || a.Sentry.DSN == "" || !a.Metric.Exporter || a.Metric.GUI {
		t.Errorf("appliance read wrong: %+v", a)
	}
	f := a.Extra.Files[0]
	if f.Contents != "Host backup\n  User ecsbackup\n" || f.Permissions != "0600" {
		t.Errorf("deprecated extra.files content not carried into contents: %+v", f)
	}
	if e.ECS.Database != "ecs" || e.ECS.Docs.Git.Branch != "gh-pages" || e.ECS.Git.Branch != "stable" {
		t.Errorf("defaults: database %q docs branch %q git branch %q", e.ECS.Database, e.ECS.Docs.Git.Branch, e.ECS.Git.Branch)
	}
	if !*a.Update.Automatic || a.Update.OnCalendar != "Sun *-*-* 06:30:00" {
		t.Errorf("update %+v", a.Update)
	}
	var deprecated, image bool
	for _, w := range warns {
		deprecated = deprecated || strings.Contains(w.Msg, "appliance.extra.files.0.content is deprecated, use contents")
		image = image || strings.Contains(w.String(), "template-env.yml:21:3: warning: appliance.git is not used") && strings.Contains(w.Msg, "new disk image")
	}
	if !deprecated || !image {
		t.Errorf("no deprecation warning for content, or none saying appliance.git is not used: %v", warns)
	}
}

func TestHeaderRequired(t *testing.T) {
	data := []byte(strings.TrimPrefix(readFixture(t, "template-env.yml"), "#cloud-config\n"))
	wantError(t, data, `env.yml:1:1: the first line must be "#cloud-config"`, "add that line")
}

func TestUnknownKeySuggestsClosest(t *testing.T) {
	data := edit(t, "    client_certs_mandatory: false", "    client_cert_mandatory: false")
	wantError(t, data, `env.yml:14:5: unknown key appliance.ssl.client_cert_mandatory; did you mean "client_certs_mandatory"?`)
}

func TestUnknownKeyWithoutNearMatchListsKeys(t *testing.T) {
	data := edit(t, "  userswitcher:\n", "  frobnicate: 1\n  userswitcher:\n")
	wantError(t, data, "unknown key ecs.frobnicate (known keys: database, docs, git, migrate,")
}

func TestWrongTypesArePositioned(t *testing.T) {
	data := edit(t, "    exporter: true", "    exporter: yes please")
	data = []byte(strings.Replace(string(data), "    dsn: https://abc123@sentry.example.org/2", "    dsn: {url: x}", 1))
	data = []byte(strings.Replace(string(data), "      - path: /root/.ssh/config", "      - path: [/root/.ssh/config]", 1))
	errs := parseErrors(t, data)
	want := []string{
		"env.yml:16:10: appliance.sentry.dsn must be a string, found a mapping",
		"env.yml:18:15: appliance.metric.exporter must be true or false, found a string",
		"env.yml:26:15: appliance.extra.files.0.path must be a string, found a list",
	}
	for _, w := range want {
		if !strings.Contains(strings.Join(errs, "\n"), w) {
			t.Errorf("missing %q in:\n%s", w, strings.Join(errs, "\n"))
		}
	}
}

func TestMissingRequiredKeys(t *testing.T) {
	data := edit(t, "  domain: ecs.example.org\n", "")
	wantError(t, data, "env.yml:9:3: missing required key appliance.domain")
	data = []byte("#cloud-config\ndisable_root: false\n")
	wantError(t, data, "env.yml:2:1: missing required key appliance", "env.yml:2:1: missing required key ecs")
}

func TestAllErrorsListedInFileOrder(t *testing.T) {
	data := edit(t, "    exporter: true", "    exporter: 3")
	data = []byte(strings.Replace(string(data), "  domain: ecs.example.org", "  domian: ecs.example.org", 1))
	errs := parseErrors(t, data)
	if len(errs) != 3 {
		t.Fatalf("want 3 errors (typo, missing domain, type), got:\n%s", strings.Join(errs, "\n"))
	}
	if !strings.HasPrefix(errs[0], `env.yml:9:3: unknown key appliance.domian; did you mean "domain"?`) ||
		!strings.HasPrefix(errs[1], "env.yml:9:3: missing required key appliance.domain") ||
		!strings.HasPrefix(errs[2], "env.yml:18:15: appliance.metric.exporter must be true or false, found a number") {
		t.Errorf("errors:\n%s", strings.Join(errs, "\n"))
	}
}

func TestMalformedYAMLPositioned(t *testing.T) {
	cases := map[string]string{
		"#cloud-config\nappliance:\n  domain: [x\n":              "env.yml:3:3: invalid YAML: did not find expected ',' or ']'",
		"#cloud-config\nappliance:\n\tdomain: x\n":               "env.yml:3:1: invalid YAML: found character that cannot start any token",
		"#cloud-config\nappliance: {}\nappliance: {}\n":          "env.yml:3:1: invalid YAML: key \"appliance\" is already defined at line 2",
		"#cloud-config\n- a\n":                                   "env.yml:2:1: the file must be a mapping",
		"#cloud-config\na: 1\n---\nb: 2\n":                       "env.yml:3:1: a second YAML document",
		"#cloud-config\n":                                        "env.yml:1:1: the file holds no YAML document",
		"#cloud-config\nappliance:\n  domain: x\n   backup: y\n": "env.yml:4:",
	}
	for in, want := range cases {
		errs := parseErrors(t, []byte(in))
		if !strings.HasPrefix(errs[0], want) {
			t.Errorf("%q: got %q, want prefix %q", in, errs[0], want)
		}
	}
}

func TestTopLevelTypoWarns(t *testing.T) {
	data := edit(t, "ssh_authorized_keys:", "ssh_authorised_keys:")
	_, warns, err := Parse("env.yml", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) == 0 || !strings.Contains(warns[0].String(), `env.yml:3:1: warning: top-level key "ssh_authorised_keys" is passed to cloud-init as is; did you mean "ssh_authorized_keys"?`) {
		t.Errorf("warnings: %v", warns)
	}
}

func TestErrorsNeverCarrySecrets(t *testing.T) {
	data := edit(t, "  vault_sign: |\n", "  vault_sign:\n    nested: |\n")
	data = []byte(strings.Replace(string(data), "  settings: |\n", "  settings:\n    - |\n", 1))
	errs := strings.Join(parseErrors(t, data), "\n")
	for _, secret := range []string{"SECRET_KEY", "PRIVATE KEY BLOCK", "W3k1bX6U"} {
		if strings.Contains(errs, secret) {
			t.Errorf("error message reveals %q:\n%s", secret, errs)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"default-env.yml", "template-env.yml"} {
		f.Add([]byte(readFixture(f, name)))
	}
	f.Add([]byte("#cloud-config\nappliance: &a {domain: x}\necs: *a\n"))
	f.Add([]byte("#cloud-config\nappliance:\n  storage:\n    setup:\n      disks:\n        - device: /dev/vdb\n          partitions: [{label: ecs-data, size: 70%}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, _, err := Parse("fuzz.yml", data)
		if err == nil {
			if e.Appliance.Domain == "" {
				t.Fatal("loaded without a domain")
			}
			if _, _, err := Flatten(e, nil, ""); err != nil && !strings.Contains(err.Error(), "cannot be a shell variable name") {
				t.Fatalf("flatten: %v", err)
			}
			return
		}
		var list ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("error %T without positions: %v", err, err)
		}
	})
}

// aliasBomb is nine levels of nine aliases (9^9 values once expanded), its lines
// indented by indent.
func aliasBomb(indent string) string {
	var b strings.Builder
	b.WriteString(indent + "a0: &a0 [x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		p := fmt.Sprintf("*a%d", i-1)
		fmt.Fprintf(&b, "%sa%d: &a%d [%s]\n", indent, i, i, strings.Repeat(p+", ", 8)+p)
	}
	return b.String()
}

// TestAliasesRefused: anchors and aliases are refused with their position, at the top
// level (cloud-init's keys, which Parse does not decode) and under a key that is only
// warned about, before anything expands them (issue 10).
func TestAliasesRefused(t *testing.T) {
	top := edit(t, "disable_root: false\n", "disable_root: false\n"+aliasBomb(""))
	wantError(t, top, "env.yml:7:5: YAML anchors and aliases (&name, *name) are not allowed", "env.yml:8:10: YAML anchors")
	lvm := edit(t, "  storage:\n", "  storage:\n    setup:\n      lvm:\n"+aliasBomb("        "))
	wantError(t, lvm, "env.yml:37:13: YAML anchors and aliases")
	merge := edit(t, "  userswitcher:\n", "  userswitcher: &u\n    enabled: false\n  docs: {<<: *u}\n  x:\n")
	wantError(t, merge, "YAML anchors and aliases")
}

// TestDecodeBoundsAliases: the other files DecodeAt reads may use aliases, but what they
// expand to is bounded.
func TestDecodeBoundsAliases(t *testing.T) {
	var ok struct {
		A string `yaml:"a"`
		B string `yaml:"b"`
	}
	if _, _, err := DecodeAt("agent.yml", []byte("a: &x 1\nb: *x\n"), &ok); err != nil || ok.B != "1" {
		t.Fatalf("alias not followed: %+v, %v", ok, err)
	}
	// Six levels of nine: 9^6 strings, more than MaxAliasValues.
	bomb := strings.Join(strings.SplitAfter(aliasBomb(""), "\n")[:6], "") + "z: *a5\n"
	var deep struct {
		Z [][][][][][]string `yaml:"z"`
	}
	_, _, err := DecodeAt("agent.yml", []byte(bomb), &deep)
	if err == nil || !strings.Contains(err.Error(), "agent.yml:7:4: z: the aliases expand to more than 65536 values") {
		t.Fatalf("err = %v", err)
	}
}

// TestTextErrorsPositioned: what yaml.v3 reports without a line (bytes that are not
// UTF-8, NUL) gets line and column, and a byte-order mark is named (issue 10).
func TestTextErrorsPositioned(t *testing.T) {
	wantError(t, edit(t, "  domain: ecs.example.org", "  domain: \xe9cs.example.org"), "env.yml:9:11: this byte is not UTF-8")
	wantError(t, edit(t, "  domain: ecs.example.org", "  domain: ecs.ex\x00ample.org"), "env.yml:9:17: a NUL byte")
	wantError(t, edit(t, "  domain: ecs.example.org", "  domain: \"é\x07\""), "env.yml:9:13: control character U+0007 is not allowed")
	wantError(t, append([]byte("\xef\xbb\xbf"), readFixture(t, "template-env.yml")...), "env.yml:1:1: the file starts with a UTF-8 byte-order mark (BOM)", "sed -i")
	if _, _, err := DecodeAt("extra.yml", []byte("a: \xff\n"), &struct{}{}); err == nil || !strings.HasPrefix(err.Error(), "extra.yml:1:4: this byte is not UTF-8") {
		t.Errorf("DecodeAt: %v", err)
	}
}

// TestUnpackagedSwitchWarnsOnlyWhenOn: metric.gui true loads with a warning that says
// what to use instead; false (the template's value) says nothing.
func TestUnpackagedSwitchWarnsOnlyWhenOn(t *testing.T) {
	_, warns, err := parseFixture(t, "template-env.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warns {
		if strings.Contains(w.Msg, "grafana") {
			t.Errorf("gui: false warned: %v", w)
		}
	}
	e, warns, err := Parse("env.yml", edit(t, "    gui: false", "    gui: true"))
	if err != nil {
		t.Fatal(err)
	}
	var said bool
	for _, w := range warns {
		said = said || strings.HasPrefix(w.String(), "env.yml:20:5: warning: appliance.metric.gui: this appliance does not run grafana") && strings.Contains(w.Msg, "ssh -L 9090")
	}
	if !said || !e.Appliance.Metric.GUI {
		t.Errorf("gui: true: no warning naming grafana and the tunnel to Prometheus: %v", warns)
	}
}
