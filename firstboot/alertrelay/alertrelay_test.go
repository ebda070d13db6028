package alertrelay_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/ethikkom/ecs-appliance/firstboot/alertrelay"
	"github.com/ethikkom/ecs-appliance/firstboot/report"
	"github.com/ethikkom/ecs-appliance/firstboot/report/sentrytest"
	"github.com/ethikkom/ecs-appliance/internal/testtool"
)

// logLines collects what the relay logs; the handler may run concurrently.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// post sends body to h as Alertmanager would.
func post(h http.Handler, method, body string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, "/", strings.NewReader(body)))
	return w
}

// notification is what Alertmanager 0.25 posts (fields the relay ignores included).
const notification = `{
  "receiver": "relay", "status": "firing", "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0,
  "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://ecs:9093",
  "alerts": [
    {"status": "firing",
     "labels": {"alertname": "NodeFilesystemFreeLow", "severity": "warning", "mountpoint": "/data", "instance": "localhost:9100"},
     "annotations": {"summary": "only 12% free\n  on /data"},
     "startsAt": "2024-12-05T10:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "a1"},
    {"status": "resolved",
     "labels": {"alertname": "PostgresDown", "severity": "critical"},
     "annotations": {},
     "startsAt": "2024-12-05T09:00:00Z", "endsAt": "2024-12-05T09:30:00Z", "generatorURL": "", "fingerprint": "b2"}
  ]
}`

func TestHandlerSendsEachAlert(t *testing.T) {
	var sent []report.Failure
	var log logLines
	w := post(alertrelay.Handler(func(f report.Failure) error { sent = append(sent, f); return nil }, log.printf), "POST", notification)
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	want := []report.Failure{
		{Group: "alert NodeFilesystemFreeLow", Level: sentry.LevelWarning,
			Message:     "NodeFilesystemFreeLow: only 12% free on /data (instance=localhost:9100, mountpoint=/data, severity=warning)",
			Fingerprint: []string{"alert", "firing", "NodeFilesystemFreeLow", "instance=localhost:9100", "mountpoint=/data", "severity=warning"}},
		{Group: "alert PostgresDown", Level: sentry.LevelInfo, Message: "resolved: PostgresDown (severity=critical)",
			Fingerprint: []string{"alert", "resolved", "PostgresDown", "severity=critical"}},
	}
	if !reflect.DeepEqual(sent, want) {
		t.Errorf("sent\n%q\nwant\n%q", sent, want)
	}
	if log.String() != "" {
		t.Errorf("logged %q", log.String())
	}
}

func TestHandlerLevelFromSeverity(t *testing.T) {
	for severity, want := range map[string]sentry.Level{
		"critical": sentry.LevelFatal, "error": sentry.LevelError, "warning": sentry.LevelWarning,
		"info": sentry.LevelInfo, "page": sentry.LevelInfo, "": sentry.LevelInfo,
	} {
		var got report.Failure
		body := fmt.Sprintf(`{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"A","severity":%q}}]}`, severity)
		post(alertrelay.Handler(func(f report.Failure) error { got = f; return nil }, t.Logf), "POST", body)
		if got.Level != want {
			t.Errorf("severity %q: level %q, want %q", severity, got.Level, want)
		}
	}
}

func TestHandlerRefusesWhatIsNoNotification(t *testing.T) {
	for _, c := range []struct {
		name, method, body string
		code               int
	}{
		{"GET", "GET", "", http.StatusMethodNotAllowed},
		{"bad JSON", "POST", `{"version":"4","alerts":[`, http.StatusBadRequest},
		{"another version", "POST", `{"version":"5","alerts":[]}`, http.StatusBadRequest},
		{"too large", "POST", `{"version":"4","x":"` + strings.Repeat("x", 1<<20) + `"}`, http.StatusRequestEntityTooLarge},
	} {
		var log logLines
		w := post(alertrelay.Handler(func(report.Failure) error { t.Errorf("%s: sent", c.name); return nil }, log.printf), c.method, c.body)
		reason := strings.TrimSuffix(w.Body.String(), "\n")
		if w.Code != c.code || reason == "" || strings.Contains(reason, "\n") {
			t.Errorf("%s: %d %q, want %d and a one-line reason", c.name, w.Code, reason, c.code)
		}
		if c.method == "GET" && w.Header().Get("Allow") != "POST" {
			t.Errorf("GET: Allow %q", w.Header().Get("Allow"))
		}
		if c.method == "POST" && !strings.Contains(log.String(), reason) {
			t.Errorf("%s: logged %q, want the reason %q", c.name, log.String(), reason)
		}
	}
}

// TestHandlerFailedSendIsRetried: one failed send makes the answer a 5xx, which
// Alertmanager retries; the other alerts are still sent and the failure is logged.
func TestHandlerFailedSendIsRetried(t *testing.T) {
	var sent []string
	var log logLines
	send := func(f report.Failure) error {
		if f.Group == "alert NodeFilesystemFreeLow" {
			return errors.New("sentry: the server answered 429 to the event of " + f.Group)
		}
		sent = append(sent, f.Group)
		return nil
	}
	w := post(alertrelay.Handler(send, log.printf), "POST", notification)
	if w.Code != http.StatusBadGateway {
		t.Errorf("%d %s, want 502", w.Code, w.Body)
	}
	if !reflect.DeepEqual(sent, []string{"alert PostgresDown"}) {
		t.Errorf("sent %q", sent)
	}
	if !strings.Contains(log.String(), "answered 429 to the event of alert NodeFilesystemFreeLow") {
		t.Errorf("logged %q", log.String())
	}
}

func TestServeRefusesAddressesOffLoopback(t *testing.T) {
	h := alertrelay.Handler(func(report.Failure) error { return nil }, t.Logf)
	// A done context: a Serve that listened anyway returns at once, with no error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:9095", "localhost:0", "127.0.0.1"} {
		err := alertrelay.Serve(ctx, addr, h)
		if err == nil || !strings.Contains(err.Error(), addr) {
			t.Errorf("%s: %v, want a refusal naming the address", addr, err)
		}
	}
}

// serve runs the relay on a free loopback port and returns its address once it
// answers, and stop, which ends Serve's context and fails the test unless Serve
// then returns cleanly. stop also runs when the test ends.
func serve(t *testing.T, h http.Handler) (addr string, stop func()) {
	addr = testtool.FreeAddress(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- alertrelay.Serve(ctx, addr, h) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-served:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("Serve did not return after its context was done")
			}
		})
	}
	t.Cleanup(stop)
	waitFor(t, "the relay to answer", func() bool {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusMethodNotAllowed
	})
	return addr, stop
}

func TestServeStopsWhenDone(t *testing.T) {
	addr, stop := serve(t, alertrelay.Handler(func(report.Failure) error { return nil }, t.Logf))
	resp, err := http.Post("http://"+addr+"/", "application/json", strings.NewReader(`{"version":"4","alerts":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("an empty notification: %s", resp.Status)
	}
	stop()
	if resp, err := http.Get("http://" + addr + "/"); err == nil {
		resp.Body.Close()
		t.Error("the relay still answers after Serve returned")
	}
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestAlertmanagerToSentry: Debian's Alertmanager, configured as the appliance's
// is, notifies the relay, which sends the alert and its resolution to Sentry.
func TestAlertmanagerToSentry(t *testing.T) {
	am := testtool.Require(t, "prometheus-alertmanager")[0]
	rcv := sentrytest.Start(t)
	const key = "k3yThatMustNotLeak0123456789"
	dsn := strings.Replace(rcv.DSN, "publickey@", key+"@", 1)
	var log logLines
	relay, _ := serve(t, alertrelay.Handler(report.Sender{DSN: dsn, Site: "ecs.example.org"}.Send, log.printf))

	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	err := os.WriteFile(cfg, []byte(`route:
  receiver: sentry
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: sentry
    webhook_configs:
      - url: http://`+relay+`/
        send_resolved: true
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	web := testtool.FreeAddress(t)
	logFile := filepath.Join(dir, "alertmanager.log")
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(am, "--config.file="+cfg, "--storage.path="+t.TempDir(),
		"--web.listen-address="+web, "--cluster.listen-address=")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		out.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile)
			t.Logf("alertmanager's log:\n%s\nthe relay's log:\n%s", b, log.String())
		}
	})
	waitFor(t, "alertmanager to be ready", func() bool {
		resp, err := http.Get("http://" + web + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	alert := func(endsAt string) {
		t.Helper()
		body := `[{"labels": {"alertname": "BackupMissed", "severity": "error", "site": "ecs.example.org"},
		  "annotations": {"summary": "no backup for 26 hours"}` + endsAt + `}]`
		resp, err := http.Post("http://"+web+"/api/v2/alerts", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST /api/v2/alerts: %s", resp.Status)
		}
	}
	events := func(n int) []sentrytest.Event {
		t.Helper()
		waitFor(t, fmt.Sprintf("%d events in Sentry", n), func() bool { return len(rcv.Events(t)) >= n })
		return rcv.Events(t)
	}
	const msg = "BackupMissed: no backup for 26 hours (severity=error, site=ecs.example.org)"

	alert("")
	ev := events(1)[0]
	if ev.Message != msg || ev.Level != "error" || ev.Tags["group"] != "alert BackupMissed" || ev.Tags["site"] != "ecs.example.org" {
		t.Errorf("firing event: %+v", ev)
	}

	// An alert whose end has come is resolved; Alertmanager says so at the next group_interval.
	alert(`, "endsAt": "` + time.Now().UTC().Format(time.RFC3339Nano) + `"`)
	evs := events(2)
	if len(evs) != 2 {
		t.Fatalf("%d events, want the firing and the resolved one: %+v", len(evs), evs)
	}
	ev = evs[1]
	if ev.Message != "resolved: "+msg || ev.Level != "info" || ev.Tags["group"] != "alert BackupMissed" {
		t.Errorf("resolved event: %+v", ev)
	}

	if rcv.Key(t) != key {
		t.Errorf("X-Sentry-Auth key %q, want the DSN's", rcv.Key(t))
	}
	// The envelope's header names its DSN, for the server that owns the key;
	// the events themselves must not carry it.
	if strings.Contains(strings.ReplaceAll(rcv.Raw(), `"dsn":"`+dsn+`"`, ""), key) {
		t.Errorf("an event carries the DSN's key:\n%s", rcv.Raw())
	}
	if log.String() != "" {
		t.Errorf("the relay logged %q", log.String())
	}
}
