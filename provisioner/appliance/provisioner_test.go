package appliance

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	sshcomm "github.com/hashicorp/packer-plugin-sdk/sdk-internals/communicator/ssh"

	"github.com/ethikkom/ecs-appliance/images"
)

func TestPrepareChecksConfig(t *testing.T) {
	agent := filepath.Join(t.TempDir(), "appliance-agent")
	if err := os.WriteFile(agent, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	var p Provisioner
	if err := p.Prepare(map[string]interface{}{"agent_binary": agent}); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	if p.config.ExecuteCommand != defaultExecuteCommand || p.config.StagingDirectory != defaultStaging {
		t.Errorf("defaults not set: %+v", p.config)
	}
	for _, tc := range []struct {
		raw  map[string]interface{}
		want string
	}{
		{map[string]interface{}{}, "agent_binary is required"},
		{map[string]interface{}{"agent_binary": agent + ".missing"}, "no such file"},
		{map[string]interface{}{"agent_binary": agent, "roles": []string{"web", "mail-server"}}, `no role "mail-server"`},
		{map[string]interface{}{"agent_binary": agent, "base": "fedora-42"}, `unknown base "fedora-42"`},
		{map[string]interface{}{"agent_binary": agent, "staging_directory": "tmp/x"}, "not absolute"},
		{map[string]interface{}{"agent_binary": agent, "image_archives": []string{agent + ".tar"}}, "image_archives: stat"},
		{map[string]interface{}{"agent_binary": agent, "image_archives": []string{filepath.Dir(agent)}}, "is not a regular file"},
		{map[string]interface{}{"agent_binary": agent, "image_archives": []string{agent, agent}}, "two archives are named appliance-agent"},
	} {
		var p Provisioner
		err := p.Prepare(tc.raw)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Prepare(%v) = %v, want an error with %q", tc.raw, err, tc.want)
		}
	}
}

func TestChangeCounterAcrossWrites(t *testing.T) {
	var c changeCounter
	for _, chunk := range []string{"chan", "ged: a\nother\ncha", "nged: b\n", "appliance-agent:   wrote /etc/x\n",
		"appliance-agent: install: 1 changes\n", "changed: c"} {
		_, _ = c.Write([]byte(chunk))
	}
	if c.n != 3 { // the agent's summary is not a change; the last line is not finished
		t.Errorf("counted %d changes, want 3", c.n)
	}
}

func TestQuote(t *testing.T) {
	out, err := exec.Command("sh", "-c", "printf '%s|' "+quoteAll([]string{"a b", "it's", `$HOME "x"`})).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(out), `a b|it's|$HOME "x"|`; got != want {
		t.Errorf("sh read %q, want %q", got, want)
	}
}

// testUi records what the provisioner tells Packer's UI.
type testUi struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (u *testUi) write(kind, s string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintf(&u.buf, "%s %s\n", kind, s)
}
func (u *testUi) Ask(string) (string, error)          { return "", nil }
func (u *testUi) Askf(string, ...any) (string, error) { return "", nil }
func (u *testUi) Say(s string)                        { u.write("==>", s) }
func (u *testUi) Sayf(s string, a ...any)             { u.Say(fmt.Sprintf(s, a...)) }
func (u *testUi) Message(s string)                    { u.write("   ", s) }
func (u *testUi) Error(s string)                      { u.write("ERR", s) }
func (u *testUi) Errorf(s string, a ...any)           { u.Error(fmt.Sprintf(s, a...)) }
func (u *testUi) Machine(string, ...string)           {}
func (u *testUi) TrackProgress(_ string, _, _ int64, r io.ReadCloser) io.ReadCloser {
	return r
}
func (u *testUi) String() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.buf.String()
}

// provision runs the provisioner in-process over Packer's SSH communicator.
func provision(t *testing.T, cfg *sshcomm.Config, raw map[string]interface{}) string {
	t.Helper()
	var p Provisioner
	if err := p.Prepare(raw); err != nil {
		t.Fatal(err)
	}
	comm, err := sshcomm.New("ssh-test", cfg)
	if err != nil {
		t.Fatal(err)
	}
	ui := &testUi{}
	start := time.Now()
	if err := p.Provision(context.Background(), ui, comm, nil); err != nil {
		t.Fatalf("Provision: %v\n%s", err, ui)
	}
	t.Logf("provisioned in %s", time.Since(start).Round(time.Second))
	return ui.String()
}

// TestProvisionOverSSH installs the system, network and web roles of the recipe on a
// bootstrapped Debian root over SSH, checks the result (user, files, units, cleanup,
// nginx answering 503 with the status page), then runs again and checks that the
// second run changes nothing, not even a modification time. The full recipe through
// the packer binary is TestAccPackerBuild.
func TestProvisionOverSSH(t *testing.T) {
	if testing.Short() {
		t.Skip("bootstraps a Debian root and installs packages")
	}
	root := bootstrapRoot(t)
	target := startSSHD(t, root)
	agent := agentBinary(t)
	agentData, err := os.ReadFile(agent)
	if err != nil {
		t.Fatal(err)
	}
	raw := map[string]interface{}{"agent_binary": agent, "roles": []string{"system", "network", "web"}}

	out := provision(t, target.Communicator(t), raw)
	if !strings.Contains(out, "base debian-trixie") || !strings.Contains(out, "ecs-appliance: done,") {
		t.Fatalf("first run:\n%s", out)
	}
	if !strings.Contains(out, "not for this target: cloud-init") {
		t.Errorf("cloud-init role applied to a base without cloud-init:\n%s", out)
	}
	checkInstalled(t, root, agentData)

	before := snapshot(t, root)
	out = provision(t, target.Communicator(t), raw)
	if !strings.Contains(out, "ecs-appliance: unchanged") || strings.Contains(out, " changes") {
		t.Errorf("second run changed something:\n%s", out)
	}
	if d := diffSnapshots(before, snapshot(t, root)); len(d) > 0 {
		t.Errorf("second run changed the root:\n%s", strings.Join(d, "\n"))
	}

}

// checkInstalled looks at the provisioned root with its own tools.
func checkInstalled(t *testing.T, root string, agentData []byte) {
	t.Helper()
	r, err := images.LoadRecipe()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(inRoot(t, root, "getent", "passwd", "app")), "app:x:1000:1000:ECS appliance:/app:/bin/bash"; got != want {
		t.Errorf("app user: %q, want %q", got, want)
	}
	if got := strings.TrimSpace(inRoot(t, root, "stat", "-c", "%U:%G %a", "/app")); got != "app:app 755" {
		t.Errorf("/app: %s", got)
	}
	if got, _ := os.ReadFile(filepath.Join(root, r.AgentPath)); !bytes.Equal(got, agentData) {
		t.Errorf("%s does not hold the agent binary", r.AgentPath)
	}
	want, _ := images.FS.ReadFile(images.AgentConfigPath)
	if got, _ := os.ReadFile(filepath.Join(root, "etc/appliance/agent.yml")); !bytes.Equal(got, want) {
		t.Errorf("/etc/appliance/agent.yml differs from images/%s", images.AgentConfigPath)
	}
	for unit, want := range map[string]string{
		"appliance-agent.service":  "enabled",
		"ssh-host-keys.service":    "enabled",
		"systemd-networkd.service": "enabled",
		"nginx.service":            "disabled",
	} {
		got, _ := exec.Command("chroot", root, "systemctl", "is-enabled", unit).Output()
		if strings.TrimSpace(string(got)) != want {
			t.Errorf("%s is %q, want %q", unit, strings.TrimSpace(string(got)), want)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "etc/nginx/sites-enabled/default")); err == nil {
		t.Error("nginx's default site is still enabled")
	}
	inRoot(t, root, "nginx", "-t", "-q")
	if fi, err := os.Stat(filepath.Join(root, "etc/machine-id")); err != nil || fi.Size() != 0 {
		t.Errorf("/etc/machine-id must exist and be empty: %v", err)
	}
	if keys, _ := filepath.Glob(filepath.Join(root, "etc/ssh/ssh_host_*")); len(keys) > 0 {
		t.Errorf("host keys left in the image: %v", keys)
	}
	if lists, _ := filepath.Glob(filepath.Join(root, "var/lib/apt/lists/*_Packages")); len(lists) > 0 {
		t.Errorf("apt lists left: %v", lists)
	}
	if locales := inRoot(t, root, "locale", "-a"); !strings.Contains(locales, "de_DE.utf8") {
		t.Errorf("de_DE.UTF-8 not generated: %s", locales)
	}
}

var _ packersdk.Ui = (*testUi)(nil)
