package report_test

import (
	"strings"
	"testing"

	"github.com/ethikkom/ecs-appliance/firstboot/report"
	"github.com/ethikkom/ecs-appliance/firstboot/report/sentrytest"
)

func TestSendCarriesTheOriginalsFields(t *testing.T) {
	rcv := sentrytest.Start(t)
	err := report.Sender{DSN: rcv.DSN, Site: "ecs.example.org", Tags: map[string]string{
		"last_running_ecs": "abc123",
		"ecs_source":       "https://user:secret@git.example.org/ecs.git",
	}}.Send(report.Failure{Group: "backup", Message: "backup failed: duplicity exited 23"})
	if err != nil {
		t.Fatal(err)
	}
	events := rcv.Events(t)
	if len(events) != 1 {
		t.Fatalf("%d events, want 1", len(events))
	}
	ev := events[0]
	if ev.Message != "backup failed: duplicity exited 23" || ev.Level != "error" || ev.Release != report.Version() ||
		ev.Tags["site"] != "ecs.example.org" || ev.Tags["group"] != "backup" || ev.Tags["last_running_ecs"] != "abc123" {
		t.Errorf("event: %+v", ev)
	}
	if strings.Contains(rcv.Raw(), "secret@") {
		t.Errorf("the event carries the ecs_source tag:\n%s", rcv.Raw())
	}
	if rcv.Key(t) != "publickey" {
		t.Errorf("X-Sentry-Auth key %q", rcv.Key(t))
	}
}

func TestSendSaysWhenTheServerRefuses(t *testing.T) {
	rcv := sentrytest.Start(t)
	rcv.Refuse(500)
	err := report.Sender{DSN: rcv.DSN, Site: "ecs.example.org"}.Send(report.Failure{Group: "update", Message: "x"})
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("err = %v, want the server's 500", err)
	}
	if err := (report.Sender{DSN: "not a dsn"}).Send(report.Failure{Group: "g"}); err == nil || strings.Contains(err.Error(), "not a dsn") {
		t.Errorf("a bad DSN: %v (the message must not repeat it)", err)
	}
	if err := (report.Sender{}).Send(report.Failure{Group: "g"}); err == nil {
		t.Error("a Sender without a DSN sent nothing and said nothing")
	}
}
