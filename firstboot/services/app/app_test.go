package app

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/machine"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/services/pdfas"
	"github.com/ethikkom/ecs-appliance/firstboot/services/servicetest"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// TestRenderLoads renders the compose project and loads it with compose-go, the
// loader docker compose itself uses, from the files as the machine holds them.
func TestRenderLoads(t *testing.T) {
	c := servicetest.Context(t, nil, services.Facts{})
	files, err := Service{}.Files(c)
	if err != nil {
		t.Fatal(err)
	}
	servicetest.Golden(t, "default", files)
	for _, f := range files {
		if strings.Contains(string(f.Data), "SECRET_KEY") && f.Mode != 0o600 {
			t.Errorf("%s carries the settings' secrets with mode %04o", f.Path, f.Mode)
		}
	}
	project := loadProject(t, files)
	for _, name := range []string{"ecs.web", "ecs.worker", "ecs.beat", "ecs.smtpd"} {
		s, ok := project.Services[name]
		if !ok {
			t.Fatalf("no service %s", name)
		}
		if s.Image != RunningTag || s.PullPolicy != types.PullPolicyNever {
			t.Errorf("%s: image %s, pull policy %s", name, s.Image, s.PullPolicy)
		}
		if got := s.Environment["ECS_SETTINGS"]; got == nil || *got != `exec(open("/etc/ecs/settings.py").read())` {
			t.Errorf("%s: ECS_SETTINGS = %v", name, got)
		}
		if got := s.Environment["DATABASE_URL"]; got == nil || !strings.HasPrefix(*got, "postgres://app:") {
			t.Errorf("%s: DATABASE_URL = %v", name, got)
		}
		if got := s.Environment["SMTP_URL"]; got == nil || *got != "smtp://172.17.0.1:587" {
			t.Errorf("%s: SMTP_URL = %v", name, got)
		}
	}
	web := project.Services["ecs.web"]
	if len(web.Ports) != 1 || web.Ports[0].HostIP != "127.0.0.1" || web.Ports[0].Published != "5000" {
		t.Errorf("ecs.web ports: %+v", web.Ports)
	}
}

// loadProject loads the rendered compose project with compose-go, the loader docker
// compose itself uses, from the files as the machine holds them.
func loadProject(t *testing.T, files []machine.File) *types.Project {
	t.Helper()
	dir := t.TempDir()
	paths := map[string]string{}
	for _, f := range files {
		p := filepath.Join(dir, filepath.Base(f.Path))
		paths[f.Path] = p
		if err := os.WriteFile(p, f.Data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// The database URL file is the postgresql service's.
	dbURL := filepath.Join(dir, "database_url.env")
	if err := os.WriteFile(dbURL, []byte("DATABASE_URL=postgres://app:pw@172.17.0.1:5432/ecs\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	compose, _ := os.ReadFile(paths[ComposeFile])
	text := strings.NewReplacer(EnvFile, paths[EnvFile], ServiceURLs, paths[ServiceURLs], "/app/etc/ecs/database_url.env", dbURL).Replace(string(compose))
	project, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  dir,
		ConfigFiles: []types.ConfigFile{{Filename: "docker-compose.yml", Content: []byte(text)}},
		Environment: types.Mapping{},
	}, func(o *loader.Options) { o.SetProjectName("ecs", true) })
	if err != nil {
		t.Fatalf("compose-go rejects the project: %v", err)
	}
	return project
}

// TestRenderPDFAS: with ecs.pdfas.base set the project has pdf-as in its own profile
// (so the application's `up` leaves it out) on loopback, with its memory limit.
func TestRenderPDFAS(t *testing.T) {
	c := servicetest.Context(t, nil, services.Facts{})
	if _, ok := loadProject(t, mustFiles(t, c)).DisabledServices[pdfas.ComposeService]; ok {
		t.Error("pdfas is in the project without ecs.pdfas.base")
	}
	c.Env.ECS.PDFAS.Base = "tomcat:9.0-jre8@sha256:" + strings.Repeat("0", 64)
	project := loadProject(t, mustFiles(t, c))
	if _, ok := project.Services[pdfas.ComposeService]; ok {
		t.Error("pdfas is enabled without its profile")
	}
	s, ok := project.DisabledServices[pdfas.ComposeService]
	if !ok {
		t.Fatal("no pdfas service")
	}
	if s.Image != pdfas.Image(c.Env) || s.PullPolicy != types.PullPolicyNever || len(s.Profiles) != 1 || s.Profiles[0] != pdfas.ComposeService {
		t.Errorf("pdfas: image %s, pull policy %s, profiles %v", s.Image, s.PullPolicy, s.Profiles)
	}
	if len(s.Ports) != 1 || s.Ports[0].HostIP != "127.0.0.1" || s.Ports[0].Published != "5095" || s.Ports[0].Target != 8080 {
		t.Errorf("pdfas ports: %+v", s.Ports)
	}
	if s.MemLimit != 1144<<20 || s.CPUShares != pdfas.CPUShares {
		t.Errorf("pdfas mem_limit %d, cpu_shares %d", s.MemLimit, s.CPUShares)
	}
	if len(s.Volumes) != 2 || !s.Volumes[0].ReadOnly || s.Volumes[0].Source != pdfas.Properties {
		t.Errorf("pdfas volumes: %+v", s.Volumes)
	}
}

func mustFiles(t *testing.T, c *services.Context) []machine.File {
	t.Helper()
	files, err := Service{}.Files(c)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestSettingsReachPythonUnchanged: the containers' ECS_SETTINGS executes the file
// with the settings, whatever quotes, backslashes or dollars they hold.
func TestSettingsReachPythonUnchanged(t *testing.T) {
	testtool.Require(t, "/usr/bin/python3")
	settings := "DOMAIN = 'it\\'s.example.org'\nX = \"$HOME ${Y} \\\\ #\"\n"
	c := servicetest.Context(t, nil, services.Facts{})
	c.Env.ECS.Settings = settings
	files, err := Service{}.Files(c)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var code string
	for _, f := range files {
		switch f.Path {
		case SettingsFile:
			if err := os.WriteFile(filepath.Join(dir, "settings.py"), f.Data, 0o600); err != nil {
				t.Fatal(err)
			}
		case EnvFile:
			v, _ := strings.CutPrefix(strings.TrimSpace(string(f.Data)), "ECS_SETTINGS=")
			code = strings.ReplaceAll(v, containerSettings, filepath.Join(dir, "settings.py"))
		}
	}
	// As ECS's settings.py does: exec the variable at module level.
	cmd := exec.Command("/usr/bin/python3", "-c", "import os\nexec(os.environ['ECS_SETTINGS'])\nprint(DOMAIN); print(X)")
	cmd.Env = []string{"ECS_SETTINGS=" + code}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	if got, want := string(out), "it's.example.org\n$HOME ${Y} \\ #\n"; got != want {
		t.Errorf("python read %q, want %q", got, want)
	}
}

func TestRedactKeepsCredentialsOut(t *testing.T) {
	for in, want := range map[string]string{
		"https://github.com/ecs-org/ecs.git":            "https://github.com/ecs-org/ecs.git",
		"https://deploy:s3cret@git.example.org/ecs.git": "https://%2A%2A%2A@git.example.org/ecs.git",
		"git@github.com:ecs-org/ecs.git":                "git@github.com:ecs-org/ecs.git",
		"http://token@10.0.2.2:8000/ecs.git":            "http://%2A%2A%2A@10.0.2.2:8000/ecs.git",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	err := scrubURL(errors.New("fatal: unable to access 'https://deploy:s3cret@git.example.org/ecs.git/': deploy:s3cret"), "https://deploy:s3cret@git.example.org/ecs.git")
	if strings.Contains(err.Error(), "s3cret") {
		t.Errorf("the error still quotes the password: %v", err)
	}
}

func TestCountPending(t *testing.T) {
	out := "admin\n [X] 0001_initial\n [X] 0002_logentry_remove_auto_add\nstandin\n [X] 0001_initial\n [ ] 0002_hits_note\n [ ] 0003_more\nsessions\n (no migrations)\n"
	if n := countPending(out); n != 2 {
		t.Errorf("countPending = %d, want 2", n)
	}
}

func TestRunningServices(t *testing.T) {
	lines := `{"Service":"ecs.web","State":"running"}
{"Service":"ecs.worker","State":"exited"}
{"Service":"ecs.smtpd","State":"running"}`
	array := `[{"Service":"ecs.web","State":"running"},{"Service":"ecs.worker","State":"restarting"}]`
	if r := runningServices(lines); !r["ecs.web"] || r["ecs.worker"] || !r["ecs.smtpd"] {
		t.Errorf("lines: %v", r)
	}
	if r := runningServices(array); !r["ecs.web"] || r["ecs.worker"] {
		t.Errorf("array: %v", r)
	}
}

func TestSecretFingerprints(t *testing.T) {
	colons := "sec:u:3072:1:AAAA:1700000000:::u:::scESC:::+:::23::0:\nfpr:::::::::ABCDEF0123:\nssb:u:3072:1:BBBB:1700000000::::::e:::+:::23:\nfpr:::::::::FFFF0000:\nsec:u:255:22:CCCC:1700000000:::u:::scESC:::+:::ed25519:::0:\nfpr:::::::::0123ABCD:\n"
	got := secretFingerprints(colons)
	if strings.Join(got, ",") != "0123ABCD,ABCDEF0123" {
		t.Errorf("secretFingerprints = %v", got)
	}
}

// TestFetch checks out a real repository: the branch head, a pinned commit, a
// missing commit (an error naming it), and a changed source (a fresh clone).
func TestFetch(t *testing.T) {
	testtool.Require(t, "git")
	repo := t.TempDir()
	gitIn := func(dir string, args ...string) string {
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	gitIn(repo, "init", "-q", "-b", "stable")
	os.WriteFile(filepath.Join(repo, "VERSION"), []byte("1\n"), 0o644)
	gitIn(repo, "add", ".")
	gitIn(repo, "commit", "-q", "-m", "one")
	first := gitIn(repo, "rev-parse", "HEAD")
	os.WriteFile(filepath.Join(repo, "VERSION"), []byte("2\n"), 0o644)
	gitIn(repo, "commit", "-q", "-a", "-m", "two")
	second := gitIn(repo, "rev-parse", "HEAD")

	root := t.TempDir()
	m, err := machine.New(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := &Lifecycle{M: m}
	ctx := context.Background()
	got, err := l.Fetch(ctx, SourceDir, env.Git{Source: repo, Branch: "stable"})
	if err != nil || got != second {
		t.Fatalf("branch head: %s, %v (want %s)", got, err, second)
	}
	got, err = l.Fetch(ctx, SourceDir, env.Git{Source: repo, Branch: "stable", CommitID: first})
	if data, _ := os.ReadFile(filepath.Join(root, SourceDir, "VERSION")); err != nil || got != first || string(data) != "1\n" {
		t.Fatalf("pinned commit: %s, %v, VERSION %q", got, err, data)
	}
	if _, err := l.Fetch(ctx, SourceDir, env.Git{Source: repo, Branch: "stable", CommitID: "0123456789abcdef0123456789abcdef01234567"}); err == nil || !strings.Contains(err.Error(), "has no commit 0123456789abcdef") {
		t.Errorf("missing commit: %v", err)
	}
	other := t.TempDir()
	gitIn(other, "clone", "-q", repo, ".")
	os.WriteFile(filepath.Join(root, SourceDir, "stray"), []byte("x"), 0o644)
	if got, err := l.Fetch(ctx, SourceDir, env.Git{Source: other, Branch: "stable"}); err != nil || got != second {
		t.Fatalf("changed source: %s, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(root, SourceDir, "stray")); err == nil {
		t.Error("a changed source kept the old checkout's files")
	}
	if _, err := l.Fetch(ctx, SourceDir, env.Git{Source: "http://deploy:s3cret@127.0.0.1:1/ecs.git", Branch: "stable"}); err == nil ||
		strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "fetching http://%2A%2A%2A@127.0.0.1:1/ecs.git") {
		t.Errorf("unreachable source: %v", err)
	}
}

// TestCopyManual: the manual goes into static/help, also when the source has no
// static directory, and replaces what an earlier copy left.
func TestCopyManual(t *testing.T) {
	root := t.TempDir()
	m, err := machine.New(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	manual := filepath.Join(root, DocsDir, "user-manual-de")
	if err := os.MkdirAll(manual, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(manual, "index.html"), []byte("manual"), 0o644)
	os.MkdirAll(filepath.Join(root, SourceDir), 0o755)
	l := &Lifecycle{M: m}
	for range 2 {
		if err := l.copyManual(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(root, SourceDir, "static/help/index.html")); string(got) != "manual" {
		t.Errorf("static/help/index.html: %q", got)
	}
	if _, err := os.Stat(filepath.Join(root, SourceDir, "static/help/user-manual-de")); err == nil {
		t.Error("the second copy went into the first one")
	}
}

// TestOperatorValuesAreChecked: what an admin types is refused before it reaches the
// container when it cannot be an address, a name or a gender.
func TestOperatorValuesAreChecked(t *testing.T) {
	m, err := machine.New(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := &Lifecycle{M: m}
	ctx := context.Background()
	for _, tc := range []struct {
		email, first, last, gender, want string
	}{
		{"not an address", "A", "B", "f", "is not an email address"},
		{"Erika <e@example.org>", "A", "B", "f", "is not an email address"},
		{"e@example.org", " ", "B", "f", "an empty name"},
		{"e@example.org", "A", "B\x1b[2J", "f", "control characters"},
		{"e@example.org", "A", "B", "x", `gender "x": f or m`},
	} {
		if err := l.CreateUser(ctx, io.Discard, tc.email, tc.first, tc.last, tc.gender); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CreateUser(%q, %q, %q, %q) = %v, want %q", tc.email, tc.first, tc.last, tc.gender, err, tc.want)
		}
	}
	if _, err := l.ClientCert(ctx, io.Discard, "e@example.org", ""); err == nil || !strings.Contains(err.Error(), "an empty name") {
		t.Errorf("ClientCert without a name: %v", err)
	}
}

// memStore is the state store's tags in memory.
type memStore map[string]string

func (s memStore) Tag(_ context.Context, name string) (string, bool, error) {
	v, ok := s[name]
	return v, ok, nil
}
func (s memStore) SetTag(_ context.Context, name, value string) error { s[name] = value; return nil }
func (s memStore) DeleteTag(_ context.Context, name string) error     { delete(s, name); return nil }

// TestBadSourcesStandBy: a source that is not an ECS (no Dockerfile) and a commit id
// the source lacks end a first boot in standby with the reason, before docker is
// asked for anything, and record the failed commit.
func TestBadSourcesStandBy(t *testing.T) {
	testtool.Require(t, "git")
	repo := t.TempDir()
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "."}, {"commit", "-q", "-m", "no Dockerfile"}} {
		cmd := exec.Command("git", append([]string{"-C", repo}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
		if args[0] == "add" {
			os.WriteFile(filepath.Join(repo, "README"), []byte("not ECS\n"), 0o644)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	for _, tc := range []struct {
		git  env.Git
		want string
	}{
		{env.Git{Source: repo, Branch: "main"}, "has no Dockerfile at its root: not an ECS source"},
		{env.Git{Source: repo, Branch: "main", CommitID: "0123456789abcdef0123456789abcdef01234567"}, "has no commit 0123456789abcdef"},
	} {
		c := servicetest.Context(t, nil, services.Facts{})
		c.Env.ECS.Git = tc.git
		c.Env.ECS.Docs.Git = env.Git{}
		store := memStore{}
		l := &Lifecycle{M: c.M, Env: c.Env, Store: store}
		_, err := l.Boot(context.Background())
		if !errors.Is(err, ErrNoBuild) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want standby with %q", tc.git, err, tc.want)
		}
		if _, ok := store[TagRunning]; ok {
			t.Errorf("%+v: a failed first boot recorded a running build", tc.git)
		}
	}
}

// TestOneDeploymentAtATime: while one lifecycle step holds the lock, another is
// refused with a sentence, not run alongside.
func TestOneDeploymentAtATime(t *testing.T) {
	c := servicetest.Context(t, nil, services.Facts{})
	l := &Lifecycle{M: c.M, Env: c.Env, Store: memStore{}}
	_, err := l.locked(func() (Outcome, error) { return l.Update(context.Background()) })
	if err == nil || !strings.Contains(err.Error(), "another deployment of ECS runs") {
		t.Errorf("a second step while one runs: %v", err)
	}
}
