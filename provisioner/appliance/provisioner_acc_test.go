package appliance

import (
	"bytes"
	_ "embed"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/packer-plugin-sdk/acctest"
)

//go:embed test-fixtures/template.pkr.hcl
var accTemplate string

// TestAccPackerBuild is the whole path users take: the real packer binary (v1.12.0,
// built from source by `make image`, or $PACKER) loads the plugin installed with
// `packer plugins install --path`, and provisions the full recipe over SSH, twice.
// Slow (every package of the appliance): runs with PACKER_ACC=1 (make image-acc).
func TestAccPackerBuild(t *testing.T) {
	if os.Getenv(acctest.TestEnvVar) == "" {
		t.Skipf("acceptance test: set %s=1", acctest.TestEnvVar)
	}
	packer := packerBinary(t)
	dir := t.TempDir()
	pluginPath := filepath.Join(dir, "plugins")
	env := append(os.Environ(), "PACKER_PLUGIN_PATH="+pluginPath, "CHECKPOINT_DISABLE=1", "PACKER_NO_COLOR=1")

	plugin := filepath.Join(dir, "packer-plugin-ecs")
	run(t, nil, "go", "build", "-o", plugin, "../../plugin")
	run(t, env, packer, "plugins", "install", "--path", plugin, "github.com/ethikkom/ecs")

	agent := agentBinary(t)
	agentData, err := os.ReadFile(agent)
	if err != nil {
		t.Fatal(err)
	}

	root := bootstrapRoot(t)
	target := startSSHD(t, root)
	template := filepath.Join(dir, "template.pkr.hcl")
	if err := os.WriteFile(template, []byte(accTemplate), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out := run(t, env, packer, "build",
		"-var", "ssh_port="+strconv.Itoa(target.Port),
		"-var", "ssh_key="+target.KeyFile,
		"-var", "agent_binary="+agent,
		template)
	t.Logf("packer build in %s", time.Since(start).Round(time.Second))
	first, second, ok := strings.Cut(out, "ecs-appliance: done,")
	if !ok || !strings.Contains(first, "base debian-trixie") || !strings.Contains(second, "ecs-appliance: unchanged") {
		t.Fatalf("packer build output:\n%s", out)
	}
	checkInstalled(t, root, agentData)
	for _, unit := range []string{"postgresql.service", "docker.service", "postfix.service", "opendkim.service"} {
		got, _ := exec.Command("chroot", root, "systemctl", "is-enabled", unit).Output()
		if s := strings.TrimSpace(string(got)); s != "disabled" {
			t.Errorf("%s is %q: the agent starts it, not boot", unit, s)
		}
	}
	for _, prog := range []string{"docker", "pg_ctlcluster", "postconf", "opendkim", "stunnel", "duply"} {
		if err := exec.Command("chroot", root, "sh", "-c", "command -v "+prog).Run(); err != nil {
			t.Errorf("%s is not installed", prog)
		}
	}
}

// packerBinary is $PACKER, the one `make image` builds, or packer on PATH.
func packerBinary(t *testing.T) string {
	if p := os.Getenv("PACKER"); p != "" {
		return p
	}
	if p, err := filepath.Abs("../../.cache/packer-v1.12.0"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("packer")
	if err != nil {
		t.Fatal("no packer: run `make packer` or set PACKER")
	}
	return p
}

// agentBinary is the static agent the provisioner installs and runs on the target
// ($ECS_AGENT_BINARY, which make test sets, or built here): a dynamic one would not
// find dqlite's libraries in the target root.
func agentBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("ECS_AGENT_BINARY"); p != "" {
		return p
	}
	dir := t.TempDir()
	run(t, nil, "make", "-C", "../..", "-s", "appliance-agent-static", "BIN="+dir)
	return filepath.Join(dir, "appliance-agent")
}

func run(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}
