package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/agent/agenttest"
	"github.com/ethikkom/ecs-appliance/firstboot/report/sentrytest"
)

// TestFailedPhaseReachesSentry: a phase that fails after the env is active sends one
// event to appliance.sentry.dsn, tagged as the original's, with none of env.yml's
// secrets in it.
func TestFailedPhaseReachesSentry(t *testing.T) {
	rcv := sentrytest.Start(t)
	root := agenttest.NewRoot(t, func(s string) string {
		return strings.Replace(s, "    dsn: https://abc123@sentry.example.org/2\n", "    dsn: "+rcv.DSN+"\n", 1)
	})
	// nginx's configuration directory is a file: the configure phase cannot write.
	if err := os.WriteFile(filepath.Join(root, "etc/nginx"), []byte("in the way\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := runBoot(t, root, "")
	if err == nil || !strings.Contains(out, "sentry: reported the failure of boot") {
		t.Fatalf("boot: %v\n%s", err, out)
	}
	events := rcv.Events(t)
	if len(events) != 1 {
		t.Fatalf("%d events, want 1:\n%s", len(events), rcv.Raw())
	}
	ev := events[0]
	if !strings.Contains(ev.Message, "Phase configure failed") || ev.Tags["group"] != "boot" ||
		ev.Tags["site"] != "ecs.example.org" || ev.Tags["last_failed_ecs"] != "invalid" {
		t.Errorf("event: %+v", ev)
	}
	data, _ := os.ReadFile(filepath.Join(root, "app/env.yml"))
	e, _, perr := env.Parse("env.yml", data)
	if perr != nil {
		t.Fatal(perr)
	}
	a := e.Appliance
	for name, secret := range map[string]string{"ecs.settings": e.ECS.Settings, "ecs.vault_encrypt": e.ECS.VaultEncrypt,
		"ecs.vault_sign": e.ECS.VaultSign, "appliance.backup.encrypt": a.Backup.Encrypt, "appliance.dkim.key": a.DKIM.Key} {
		for _, line := range strings.Split(secret, "\n") {
			if line = strings.TrimSpace(line); len(line) >= 16 && strings.Contains(rcv.Raw(), line) {
				t.Errorf("the event carries a line of %s", name)
				break
			}
		}
	}
}

// TestReportFailureWithoutDSN: the OnFailure handler says there is nowhere to send.
func TestReportFailureWithoutDSN(t *testing.T) {
	root := agenttest.NewRoot(t, func(s string) string {
		return strings.Replace(s, "    dsn: https://abc123@sentry.example.org/2\n", "    dsn: \"\"\n", 1)
	})
	if out, err := runBoot(t, root, "state"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var out strings.Builder
	if err := ReportFailure(t.Context(), Options{Root: root, Out: &out}, "appliance-backup.service"); err != nil || !strings.Contains(out.String(), "no appliance.sentry.dsn") {
		t.Errorf("%v\n%s", err, out.String())
	}
}
