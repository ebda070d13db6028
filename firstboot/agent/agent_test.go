package agent

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/firstboot/agent/agenttest"
	"github.com/ethikkom/ecs-appliance/firstboot/services"
	"github.com/ethikkom/ecs-appliance/firstboot/status"
)

// facts are a small machine's, so the renders do not depend on the test host.
var facts = &services.Facts{MemoryMB: 4096, Cores: 2}

func runBoot(t *testing.T, root, until string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := Boot(context.Background(), Options{Root: root, Until: until, Out: &out, Facts: facts})
	return out.String(), err
}

func TestBootConvergesAndSecondRunIsUnchanged(t *testing.T) {
	root := agenttest.NewRoot(t, nil)
	out, err := runBoot(t, root, "start")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "appliance-agent: outcome changed (stopped after start)") {
		t.Errorf("first boot:\n%s", out)
	}
	active, err := os.ReadFile(filepath.Join(root, ActiveEnvPath))
	orig, _ := os.ReadFile(filepath.Join(root, "app/env.yml"))
	if err != nil || !bytes.Equal(active, orig) {
		t.Errorf("active env differs: %v", err)
	}
	if st, _ := os.Stat(filepath.Join(root, ActiveEnvPath)); st.Mode().Perm() != 0o600 {
		t.Errorf("active env mode %v", st.Mode().Perm())
	}
	if h, _ := os.ReadFile(filepath.Join(root, "etc/hostname")); string(h) != "ecs.example.org\n" {
		t.Errorf("hostname %q", h)
	}
	keys, _ := os.ReadFile(filepath.Join(root, "root/.ssh/authorized_keys"))
	if string(keys) != "ssh-ed25519 AAAAkeep keep@example.org\n"+agenttest.SSHKey+"\n" {
		t.Errorf("root's authorized_keys:\n%s", keys)
	}
	if appKeys, _ := os.ReadFile(filepath.Join(root, "app/.ssh/authorized_keys")); string(appKeys) != agenttest.SSHKey+"\n" {
		t.Errorf("app's authorized_keys:\n%s", appKeys)
	}
	// Under --root nothing acts on the host: the units are only named.
	if !strings.Contains(out, "would start docker.service nginx.service appliance-ecs-ca.path postgresql.service opendkim.service postfix.service stunnel@appliance.service") {
		t.Errorf("units not reported:\n%s", out)
	}
	// The run's figures for node-exporter's textfile collector.
	prom, _ := os.ReadFile(filepath.Join(root, "app/etc/metric_import/appliance.prom"))
	if !strings.Contains(string(prom), `letsencrypt_valid_until{domain="ecs.example.org",source="self-signed"}`) || !strings.Contains(string(prom), "appliance_version{") {
		t.Errorf("appliance.prom:\n%s", prom)
	}
	st, err := status.Read(root)
	if err != nil || st.State != status.Starting || !strings.HasPrefix(st.Source, "local (") || st.Domain != "ecs.example.org" {
		t.Errorf("status %+v %v", st, err)
	}

	out, err = runBoot(t, root, "start")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "appliance-agent: outcome unchanged") {
		t.Errorf("second boot did not say unchanged:\n%s", out)
	}

	s, err := OpenState(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runs, err := s.Runs(context.Background(), 10)
	if err != nil || len(runs) != 2 {
		t.Fatalf("runs %v, %v", runs, err)
	}
	if runs[0].Result != "unchanged" || runs[1].Result != "ok" || len(runs[1].Phases) != 7 {
		t.Errorf("runs recorded: %+v", runs)
	}
}

func TestInvalidEnvFailsUntilReset(t *testing.T) {
	root := agenttest.NewRoot(t, func(s string) string {
		return strings.Replace(s, "    exporter: true", "    exporter: 'W3k1bX6UOMw0'", 1)
	})
	out, err := runBoot(t, root, "")
	if err == nil || !strings.HasPrefix(err.Error(), "activate: env.yml is invalid") {
		t.Fatalf("err = %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(root, FailedPath)); err != nil {
		t.Error("no failed marker")
	}
	page, _ := os.ReadFile(filepath.Join(root, status.PagePath))
	for _, want := range []string{"Appliance Error", "Phase activate failed", "/app/env.yml:19:15: appliance.metric.exporter must be true or false"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("status page lacks %q", want)
		}
	}
	if bytes.Contains(page, []byte("W3k1bX6UOMw0")) || strings.Contains(out, "W3k1bX6UOMw0") {
		t.Error("a value from env.yml reached the page or the log")
	}
	if _, err := runBoot(t, root, ""); !errors.Is(err, ErrFailed) {
		t.Errorf("boot in failed state: %v", err)
	}
	if err := ResetFailed(root); err != nil {
		t.Fatal(err)
	}
	if st, err := status.Read(root); err != nil || st.State != status.Stopped || !strings.Contains(st.Message, "cleared") {
		t.Errorf("status after reset-failed: %+v %v", st, err)
	}
	if _, err := runBoot(t, root, ""); errors.Is(err, ErrFailed) {
		t.Error("still failed after reset-failed")
	}
}

func TestStandbyStartsNothing(t *testing.T) {
	root := agenttest.NewRoot(t, func(s string) string {
		return strings.Replace(s, "appliance:\n", "appliance:\n  standby: true\n", 1)
	})
	out, err := runBoot(t, root, "")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if strings.Contains(out, "would start") || !strings.Contains(out, "outcome standby") {
		t.Errorf("standby started units:\n%s", out)
	}
	if st, _ := status.Read(root); st.State != status.Standby || st.Title != "Appliance Standby" {
		t.Errorf("status %+v", st)
	}
}

// stopAfter cancels a run once the agent has printed a line with marker.
type stopAfter struct {
	marker string
	cancel context.CancelFunc
	out    bytes.Buffer
}

func (s *stopAfter) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte(s.marker)) {
		s.cancel()
	}
	return s.out.Write(p)
}

// TestStopIsNotAFailure: a stop (SIGTERM) in the middle of a run is reported and
// recorded as stopped; it leaves no failed state behind.
func TestStopIsNotAFailure(t *testing.T) {
	root := agenttest.NewRoot(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &stopAfter{marker: "prepare   ok", cancel: cancel}
	err := Boot(ctx, Options{Root: root, Out: w, Facts: facts})
	out := w.out.String()
	if err == nil || !strings.Contains(out, "outcome stopped in configure") {
		t.Fatalf("err %v\n%s", err, out)
	}
	if strings.Contains(out, "failed") {
		t.Errorf("a stop was reported as a failure:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(root, FailedPath)); !os.IsNotExist(err) {
		t.Errorf("a stop left the failed state: %v", err)
	}
	if st, _ := status.Read(root); st.State != status.Stopped {
		t.Errorf("status %+v", st)
	}
	s, err := OpenState(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runs, err := s.Runs(context.Background(), 1)
	if err != nil || len(runs) != 1 || !strings.Contains(runs[0].Error, "stopped") {
		t.Errorf("recorded run: %+v %v", runs, err)
	}
}
