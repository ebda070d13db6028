package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ethikkom/ecs-appliance/env"
	"github.com/ethikkom/ecs-appliance/firstboot/report/sentrytest"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// monitoringPorts is every port the monitoring services listen on (the exporters,
// nginx's stub_status, Prometheus, Alertmanager and its cluster port, the relay).
var monitoringPorts = []string{"9100", "9187", "9113", "9121", "8081", "9090", "9093", "9094", "9095"}

// withMonitoring turns on the exporters and the server and points appliance.sentry
// at the receiver, as the VM reaches the host (10.0.2.2).
func withMonitoring(t testing.TB, s string, receiver *sentrytest.Receiver) string {
	dsn := strings.Replace(receiver.DSN, "127.0.0.1", "10.0.2.2", 1)
	return replace(t, s, "  storage:\n", "  metric:\n    exporter: true\n    server: true\n  sentry:\n    dsn: "+dsn+"\n  storage:\n")
}

// checkNothingListens: without appliance.metric, no monitoring port is open.
func checkNothingListens(t testing.TB, b *booted) {
	out := b.ssh(t, "ss -Hltn")
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		for _, p := range monitoringPorts {
			if strings.HasSuffix(f[3], ":"+p) {
				t.Errorf("appliance.metric is off, but something listens on %s", f[3])
			}
		}
	}
}

// forward opens an SSH tunnel from a free host port to guest (an address of the
// guest's loopback) and returns the host's end.
func (b *booted) forward(t testing.TB, guest string) string {
	t.Helper()
	local := testtool.FreeAddress(t)
	host, port := b.sshTarget()
	cmd := exec.Command("ssh", "-i", b.v.sshKey, "-p", port, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ExitOnForwardFailure=yes", "-N", "-L", local+":"+guest, "root@"+host)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(time.Minute)
	for {
		if resp, err := http.Get("http://" + local + "/"); err == nil {
			resp.Body.Close()
			return local
		}
		if time.Now().After(deadline) {
			t.Fatalf("no tunnel to the guest's %s", guest)
		}
		time.Sleep(time.Second)
	}
}

// scrape reads an exporter's /metrics through a tunnel.
func scrape(t testing.TB, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// checkMonitoring: from the host, through SSH tunnels, each exporter answers with its
// service's metrics (the node exporter with the agent's textfile metrics), Prometheus
// has the original's rules and finds every target up, and an alert posted to
// Alertmanager reaches the Sentry receiver through the agent's relay and root's
// mailbox through postfix. Then a unit
// that fails reaches it through the OnFailure handler. No event carries a secret of
// env.yml.
func checkMonitoring(t testing.TB, b *booted, receiver *sentrytest.Receiver, envPath string) {
	for _, tc := range []struct{ port, want string }{
		{"9100", "appliance_version{"},
		{"9100", "node_boot_time_seconds "},
		{"9187", "pg_up 1"},
		{"9113", "nginx_up 1"},
		{"9121", "redis_up 1"},
	} {
		if m := scrape(t, b.forward(t, "127.0.0.1:"+tc.port)); !strings.Contains(m, tc.want) {
			t.Errorf("127.0.0.1:%s/metrics has no %q", tc.port, tc.want)
		}
	}

	prom := b.forward(t, "127.0.0.1:9090")
	var rules struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name   string `json:"name"`
					Health string `json:"health"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	getJSON(t, "http://"+prom+"/api/v1/rules", &rules)
	var names []string
	for _, g := range rules.Data.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Name)
		}
	}
	for _, want := range []string{"BackupMissed", "UpdateMissed", "LetsencryptCertValidityLow", "NodeFilesystemFreeLow", "NodeLoadHigh"} {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+want+" ") {
			t.Errorf("Prometheus has no rule %s: %v", want, names)
		}
	}
	waitFor(t, "every Prometheus target up", 3*time.Minute, func() (bool, string) {
		var up struct {
			Data struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
					Value  []any             `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		getJSON(t, "http://"+prom+"/api/v1/query?query=up", &up)
		jobs := map[string]string{}
		for _, r := range up.Data.Result {
			jobs[r.Metric["job"]] = fmt.Sprint(r.Value[1])
		}
		for _, job := range []string{"prometheus", "node", "postgresql", "nginx", "redis"} {
			if jobs[job] != "1" {
				return false, fmt.Sprint(jobs)
			}
		}
		return true, ""
	})

	am := b.forward(t, "127.0.0.1:9093")
	alert := `[{"labels":{"alertname":"E2EAlert","severity":"warning"},"annotations":{"summary":"an alert posted by the e2e test"}}]`
	resp, err := http.Post("http://"+am+"/api/v2/alerts", "application/json", strings.NewReader(alert))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("Alertmanager took the alert with %s", resp.Status)
	}
	posted := time.Now()
	waitEvent(t, receiver, "alert E2EAlert")
	t.Logf("monitoring: %d rules loaded, every target up; the alert reached Sentry %s after it was posted", len(names), time.Since(posted).Round(time.Second))
	waitFor(t, "alert mail to root", 3*time.Minute, func() (bool, string) {
		out, err := b.trySSH("grep -l E2EAlert /root/Maildir/new/*")
		return err == nil, out
	})

	// A unit that fails, with the appliance units' OnFailure handler.
	b.ssh(t, "systemd-run --unit=e2e-forced-failure -p OnFailure=appliance-failed@e2e-forced-failure.service.service /bin/false || true")
	waitEvent(t, receiver, "e2e-forced-failure.service")

	data, err := os.ReadFile(envPath)
	if err != nil {
		t.Fatal(err)
	}
	e, _, err := env.Parse(envPath, data)
	if err != nil {
		t.Fatal(err)
	}
	raw := receiver.Raw()
	for name, secret := range map[string]string{
		"ecs.settings": e.ECS.Settings, "ecs.vault_encrypt": e.ECS.VaultEncrypt, "ecs.vault_sign": e.ECS.VaultSign,
		"appliance.backup.encrypt": e.Appliance.Backup.Encrypt, "appliance.dkim.key": e.Appliance.DKIM.Key,
	} {
		for _, line := range strings.Split(secret, "\n") {
			if line = strings.TrimSpace(line); len(line) >= 20 && strings.Contains(raw, line) {
				t.Errorf("a Sentry event carries a line of %s", name)
				break
			}
		}
	}
}

// waitEvent waits until the receiver has an event of group.
func waitEvent(t testing.TB, receiver *sentrytest.Receiver, group string) {
	t.Helper()
	waitFor(t, "a Sentry event of "+group, 3*time.Minute, func() (bool, string) {
		var groups []string
		for _, ev := range receiver.Events(t) {
			if ev.Tags["group"] == group {
				return true, ""
			}
			groups = append(groups, ev.Tags["group"])
		}
		return false, fmt.Sprint(groups)
	})
}

// waitFor polls ok until it holds or the deadline passes; ok says what it saw.
func waitFor(t testing.TB, what string, within time.Duration, ok func() (bool, string)) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	for {
		done, saw := ok()
		if done {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no %s within %s; saw %s", what, within, saw)
		case <-time.After(2 * time.Second):
		}
	}
}

func getJSON(t testing.TB, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
}
