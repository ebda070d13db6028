// Package alertrelay passes Alertmanager's alerts on to the Sentry DSN of
// appliance.sentry.dsn. Alertmanager cannot talk to Sentry, and the original's
// maildir watcher is gone, so alertmanager.yml names a webhook receiver that
// points at this relay, which the agent runs on loopback (appliance-agent
// alert-relay): each alert of a notification becomes one event of report.Send.
package alertrelay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/getsentry/sentry-go"

	"github.com/ethikkom/ecs-appliance/firstboot/report"
)

// Payload is the part of Alertmanager's webhook notification the relay uses.
type Payload struct {
	Version string  `json:"version"` // "4" in Debian bookworm's Alertmanager 0.25
	Alerts  []Alert `json:"alerts"`
}

// Alert is one alert of a notification.
type Alert struct {
	Status      string            `json:"status"` // "firing" or "resolved"
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

// payloadVersion is the only version the mapping below was written for.
const payloadVersion = "4"

// maxBody bounds a notification; the appliance's few rules make ones of a few KiB.
const maxBody = 1 << 20

// Handler takes Alertmanager's webhook notifications and sends each alert with
// send. It answers 502 when a send failed, so that Alertmanager retries (it
// does on 5xx, not on 4xx); log gets each failure.
func Handler(send func(report.Failure) error, log func(format string, args ...any)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "only POST", http.StatusMethodNotAllowed)
			return
		}
		var p Payload
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&p); err != nil {
			code, reason := http.StatusBadRequest, "not an Alertmanager webhook payload: "+oneLine(err.Error())
			if errors.As(err, new(*http.MaxBytesError)) {
				code, reason = http.StatusRequestEntityTooLarge, fmt.Sprintf("payload over %d bytes", maxBody)
			}
			log("alert-relay: %s", reason)
			http.Error(w, reason, code)
			return
		}
		if p.Version != payloadVersion {
			reason := fmt.Sprintf("webhook payload version %q, want %q", p.Version, payloadVersion)
			log("alert-relay: %s", reason)
			http.Error(w, reason, http.StatusBadRequest)
			return
		}
		failed := 0
		for _, a := range p.Alerts {
			if err := send(failure(a)); err != nil {
				// report's errors never carry the DSN's key.
				log("alert-relay: %v", err)
				failed++
			}
		}
		if failed > 0 {
			http.Error(w, fmt.Sprintf("%d of %d alerts not sent to Sentry", failed, len(p.Alerts)), http.StatusBadGateway)
			return
		}
		io.WriteString(w, "ok\n")
	})
}

// failure maps one alert to an event. Its fingerprint is the alert's name, status
// and labels, so one alert stays one Sentry issue while its summary's value
// changes; a resolved alert is its own issue, at level info.
func failure(a Alert) report.Failure {
	name := a.Labels["alertname"]
	msg := name
	if s := a.Annotations["summary"]; s != "" {
		msg = name + ": " + s
	}
	var labels []string
	for k, v := range a.Labels {
		if k != "alertname" {
			labels = append(labels, k+"="+v)
		}
	}
	if len(labels) > 0 {
		sort.Strings(labels)
		msg += " (" + strings.Join(labels, ", ") + ")"
	}
	f := report.Failure{Group: "alert " + name, Message: oneLine(msg), Level: level(a.Labels["severity"]),
		Fingerprint: append([]string{"alert", a.Status, name}, labels...)}
	if a.Status == "resolved" {
		f.Message, f.Level = "resolved: "+f.Message, sentry.LevelInfo
	}
	return f
}

func level(severity string) sentry.Level {
	switch severity {
	case "critical":
		return sentry.LevelFatal
	case "error":
		return sentry.LevelError
	case "warning":
		return sentry.LevelWarning
	}
	return sentry.LevelInfo
}

// oneLine folds newlines and runs of spaces (a multi-line summary) into one space.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// shutdownTimeout bounds the wait for notifications in flight at shutdown; one
// event may take report's 20 s to be delivered.
const shutdownTimeout = 25 * time.Second

// Serve serves h on addr, which must be a loopback IP and port (the relay takes
// anyone's alerts, so nobody outside the machine may reach it), until ctx is
// done, then waits for the requests in flight.
func Serve(ctx context.Context, addr string, h http.Handler) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("alert-relay address %q: %v", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("alert-relay address %q: not a loopback IP (e.g. 127.0.0.1:9095)", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		// No WriteTimeout: a notification's events are sent before the answer,
		// each within report's timeout; Alertmanager bounds its own wait.
		IdleTimeout: 2 * time.Minute,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("alert-relay shutdown: %v", err)
	}
	return nil
}
