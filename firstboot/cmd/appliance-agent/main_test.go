package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/firstboot/agent/agenttest"
)

// buildTool compiles one of the project's commands into dir.
func buildTool(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func agentRun(args ...string) (int, string, string) {
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestDiscoverFindsTheISOOfEcsEnvBuild runs the admin's real tool to make the seed
// and has the agent find it on the image file, as on a VM's CD-ROM.
func TestDiscoverFindsTheISOOfEcsEnvBuild(t *testing.T) {
	bin := t.TempDir()
	ecsEnv := buildTool(t, bin, "github.com/ethikkom/ecs-appliance/env-tools/cmd/ecs-env")
	site := t.TempDir()
	envPath := filepath.Join(site, "env.yml")
	original, err := os.ReadFile("../../../env/testdata/template-env.yml")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(envPath, original, 0o600)
	if out, err := exec.Command(ecsEnv, "build", envPath).CombinedOutput(); err != nil {
		t.Fatalf("ecs-env build: %v\n%s", err, out)
	}

	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc/appliance"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/appliance/agent.yml"), []byte("sources: [local, nocloud]\n"), 0o644)
	iso := filepath.Join(site, "env-cidata.iso")
	code, out, errOut := agentRun("discover", "--root", root, "--device", iso)
	if code != 0 {
		t.Fatalf("discover: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(out, "nocloud") || !strings.Contains(out, "would use: env.yml from nocloud") || !strings.Contains(out, iso) {
		t.Errorf("discover output:\n%s", out)
	}
	if strings.Contains(out+errOut, "PRIVATE KEY") {
		t.Error("discover printed the document")
	}
	// discover changes nothing
	if _, err := os.Stat(filepath.Join(root, "run")); !os.IsNotExist(err) {
		t.Errorf("discover wrote under the root: %v", err)
	}
}

func TestUsage(t *testing.T) {
	if code, _, _ := agentRun(); code != 2 {
		t.Errorf("no arguments: exit %d", code)
	}
	if code, out, _ := agentRun("--help"); code != 0 || !strings.Contains(out, "reset-failed") {
		t.Errorf("--help: %d\n%s", code, out)
	}
	if code, _, _ := agentRun("status", "--until", "storage"); code != 2 {
		t.Errorf("--until on status: exit %d", code)
	}
	for _, args := range [][]string{{"install"}, {"install", "a.json", "b.json"}, {"app"}, {"app", "nonsense"}, {"app", "create-user", "a@example.org"}, {"app", "status", "x"}} {
		if code, _, _ := agentRun(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, errOut := agentRun("install", "--root", t.TempDir(), "/nonexistent.json"); code != 1 || !strings.Contains(errOut, "nonexistent.json") {
		t.Errorf("install of a missing manifest: %d %s", code, errOut)
	}
	if code, _, errOut := agentRun("status", "--root", t.TempDir()); code != 1 || !strings.Contains(errOut, "no status yet") {
		t.Errorf("status without a run: %d %s", code, errOut)
	}
}

// TestBootThenStatusAndState runs a boot (up to prepare: no services) and reads back
// what it recorded, as an admin would.
func TestBootThenStatusAndState(t *testing.T) {
	root := agenttest.NewRoot(t, nil)
	code, out, errOut := agentRun("boot", "--root", root, "--until", "prepare")
	if code != 0 || !strings.Contains(out, "appliance-agent: outcome changed (stopped after prepare)") {
		t.Fatalf("boot: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = agentRun("status", "--root", root)
	if code != 0 || !strings.Contains(out, "state   starting") || !strings.Contains(out, "domain  ecs.example.org") {
		t.Errorf("status: exit %d\n%s", code, out)
	}
	code, out, errOut = agentRun("state", "--root", root)
	if code != 0 || !strings.Contains(out, "active_env_sha256") || !strings.Contains(out, " ok") || !strings.Contains(out, "storage") {
		t.Errorf("state: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := agentRun("boot", "--root", root, "--until", "nosuchphase"); code != 2 || !strings.Contains(errOut, "unknown phase") {
		t.Errorf("unknown phase: exit %d %s", code, errOut)
	}
}
